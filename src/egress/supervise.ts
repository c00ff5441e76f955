// Keeping a state dir's egress proxy running: it is a detached process of its own (cells outlive
// every `lazarus apply`, and the daemon may not run), recorded in <state>/egress/proxy.json by pid
// and start time. Whoever reconciles calls ensureProxy: a live proxy is told to reload, a dead one
// is started again. While none runs, members' connections to it are refused: their network
// namespace has no other way out.
import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { isAlive } from "../host/proc.js";
import { LazarusError } from "../util/errors.js";
import { egressSettings, type EgressSettings } from "./settings.js";
import { SOCKET_NAME, egressDir, proxyRecordFile, readCellFiles, writeSettingsFile, type ProxyRecord } from "./state.js";

const MARK = "LAZARUS_EGRESS_PROXY"; // in the proxy's environment: the state dir it serves
const START_TIMEOUT_MS = 10_000;

async function readRecord(stateRoot: string): Promise<ProxyRecord | undefined> {
  try {
    return JSON.parse(await readFile(proxyRecordFile(stateRoot), "utf8")) as ProxyRecord;
  } catch {
    return undefined;
  }
}

// Whether pid is this state dir's live proxy: recorded start time, and our mark in its environment.
function isOurs(rec: ProxyRecord | undefined, stateRoot: string): rec is ProxyRecord {
  if (!rec || !isAlive(rec.pid, rec.startTime)) return false;
  try {
    return readFileSync(`/proc/${rec.pid}/environ`, "utf8").split("\0").includes(`${MARK}=${path.resolve(stateRoot)}`);
  } catch {
    return false;
  }
}

// The running proxy of this state dir, if any.
export async function runningProxy(stateRoot: string): Promise<ProxyRecord | undefined> {
  const rec = await readRecord(stateRoot);
  return isOurs(rec, stateRoot) ? rec : undefined;
}

// Where the proxy's entry point is (dist/egress/main.js beside this module once built).
function mainScript(): string {
  const here = fileURLToPath(import.meta.url);
  return here.endsWith(".ts") ? path.join(path.dirname(here), "..", "..", "dist", "egress", "main.js") : path.join(path.dirname(here), "main.js");
}

// Make sure the proxy runs with these bounds and has read the cell files: reload a live one,
// start a dead one. Returns its pid.
export async function ensureProxy(stateRoot: string, settings: EgressSettings): Promise<number> {
  await writeSettingsFile(stateRoot, settings);
  const live = await runningProxy(stateRoot);
  if (live) {
    process.kill(live.pid, "SIGHUP");
    return live.pid;
  }
  const log = openSync(path.join(egressDir(stateRoot), "proxy.log"), "a", 0o600);
  try {
    const child = spawn(process.execPath, [mainScript(), path.resolve(stateRoot)], {
      detached: true,
      stdio: ["ignore", log, log],
      cwd: "/",
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", [MARK]: path.resolve(stateRoot) },
    });
    child.unref();
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const rec = await readRecord(stateRoot);
      if (rec?.pid === child.pid && isOurs(rec, stateRoot)) return rec.pid;
      if (child.exitCode !== null) break;
      await sleep(10);
    }
  } finally {
    closeSync(log);
  }
  throw new LazarusError("EGRESS_PROXY_FAILED", `the egress proxy of ${stateRoot} did not start; see ${path.join(egressDir(stateRoot), "proxy.log")}`);
}

// Wait until the proxy answers on a member's socket (after ensureProxy asked it to reload).
export async function waitForSocket(socketDir: string, timeoutMs = 5000): Promise<void> {
  const sock = path.join(socketDir, SOCKET_NAME);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(sock, () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new LazarusError("EGRESS_PROXY_FAILED", `the egress proxy does not listen at ${sock}`);
    await sleep(10);
  }
}

// Called at the start of every apply (CLI and daemon): when some cell of this state dir has an
// egress list, its proxy runs (a dead one is started again). A proxy that cannot start fails no
// other cell: the egress cells' member starts report it, and their members' connections are
// refused meanwhile.
export async function keepEgressProxy(stateRoot: string, hostEnv: NodeJS.ProcessEnv): Promise<void> {
  try {
    if ((await readCellFiles(stateRoot)).length) await ensureProxy(stateRoot, egressSettings(hostEnv));
  } catch {
    // reported where it matters: syncCellEgress throws the same error for each egress cell
  }
}

// Stop this state dir's proxy (tests; a host being taken down).
export async function stopProxy(stateRoot: string): Promise<void> {
  const live = await runningProxy(stateRoot);
  if (!live) return;
  process.kill(live.pid, "SIGTERM");
  for (let i = 0; i < 500 && isAlive(live.pid, live.startTime); i++) await sleep(10);
}

// Tell a running proxy to read its files again (nothing when none runs).
export async function reloadProxy(stateRoot: string): Promise<void> {
  const live = await runningProxy(stateRoot);
  if (live) process.kill(live.pid, "SIGHUP");
}
