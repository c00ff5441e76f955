// A helper process of one state dir that outlives every `lazarus apply` (the egress proxy, the
// model gateway): started detached, recorded in a file of its own by pid and start time once it
// is ready, and recognised by a mark in its environment (so a reused pid is never taken for it).
// Whoever reconciles calls ensure: a live one is told to reload (SIGHUP), a dead one is started.
// Starting and stopping happen holding <dir>/helper.lock (the project's lock file, src/lock/), so
// two Lazarus processes of one state dir (an apply and the daemon) never start two.
import { AsyncLocalStorage } from "node:async_hooks";
import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { isAlive } from "./proc.js";
import { LazarusError } from "../util/errors.js";
import { serialized } from "../util/serial.js";
import { acquireLock } from "../lock/lock.js";

export interface DetachedRecord {
  pid: number;
  startTime: number;
}

export interface Detached {
  what: string; // for messages: "the egress proxy"
  stateRoot: string;
  dir: string; // its own directory under the state dir (0700)
  main: string; // its entry point, e.g. "egress/main.js" under dist/
  record: string; // the file it writes once ready
  log: string;
  mark: string; // the variable in its environment that names the state dir it serves
  errorCode: string;
}

const START_TIMEOUT_MS = 10_000;
// How long one waits for another process that starts or stops the helper (each takes at most
// START_TIMEOUT_MS, or 5s to stop) before it fails naming that process.
const LOCK_WAIT_MS = 3 * START_TIMEOUT_MS;

const held = new AsyncLocalStorage<ReadonlySet<string>>();

export const helperLockFile = (d: Pick<Detached, "dir">): string => path.join(d.dir, "helper.lock");

// Run body holding the helper's lock: whether it runs, and starting or stopping it, is decided by
// one process of the state dir at a time (and one call at a time in this process). A hold inside a
// hold (the same async context) is the same hold. A holder that died is taken over at once.
export async function holdingDetached<T>(d: Detached, body: () => Promise<T>): Promise<T> {
  const file = helperLockFile(d);
  const mine = held.getStore();
  if (mine?.has(file)) return body();
  return serialized(`detached:${file}`, async () => {
    await mkdir(d.dir, { recursive: true, mode: 0o700 });
    const lock = await acquireLock(file, `keeping ${d.what}`, { timeoutMs: LOCK_WAIT_MS }).catch((err: unknown) => {
      if (!(err instanceof LazarusError) || err.code !== "LOCKED") throw err;
      throw new LazarusError(
        d.errorCode,
        `${d.what} of ${d.stateRoot} is being started or stopped by another Lazarus: ${err.message.replace(/^another Lazarus holds the state dir: /, "")}`,
      );
    });
    try {
      return await held.run(new Set([...(mine ?? []), file]), body);
    } finally {
      await lock.release();
    }
  });
}

async function readRecord<T extends DetachedRecord>(d: Detached): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(d.record, "utf8")) as T;
  } catch {
    return undefined;
  }
}

// Whether the recorded pid is this state dir's live helper: its start time, and our mark.
function isOurs(d: Detached, rec: DetachedRecord | undefined): rec is DetachedRecord {
  if (!rec || !isAlive(rec.pid, rec.startTime)) return false;
  try {
    return readFileSync(`/proc/${rec.pid}/environ`, "utf8")
      .split("\0")
      .includes(`${d.mark}=${path.resolve(d.stateRoot)}`);
  } catch {
    return false;
  }
}

export async function runningDetached<T extends DetachedRecord>(d: Detached): Promise<T | undefined> {
  const rec = await readRecord<T>(d);
  return isOurs(d, rec) ? rec : undefined;
}

// Where an entry point is: beside this module's dist/ once built (dist/host/ → dist/<main>).
function script(main: string): string {
  const here = fileURLToPath(import.meta.url);
  const dist = here.endsWith(".ts")
    ? path.join(path.dirname(here), "..", "..", "dist")
    : path.join(path.dirname(here), "..");
  return path.join(dist, main);
}

// Make sure it runs and has read its files: reload a live one, start a dead one. Returns its pid.
export function ensureDetached(d: Detached): Promise<number> {
  return holdingDetached(d, () => ensureHeld(d));
}

async function ensureHeld(d: Detached): Promise<number> {
  const live = await runningDetached(d);
  if (live) {
    process.kill(live.pid, "SIGHUP");
    return live.pid;
  }
  await mkdir(d.dir, { recursive: true, mode: 0o700 });
  const log = openSync(d.log, "a", 0o600);
  try {
    const child = spawn(process.execPath, [script(d.main), path.resolve(d.stateRoot)], {
      detached: true,
      stdio: ["ignore", log, log],
      cwd: "/",
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", [d.mark]: path.resolve(d.stateRoot) },
    });
    child.unref();
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const rec = await readRecord(d);
      if (rec?.pid === child.pid && isOurs(d, rec)) return rec.pid;
      if (child.exitCode !== null) break;
      await sleep(10);
    }
  } finally {
    closeSync(log);
  }
  throw new LazarusError(d.errorCode, `${d.what} of ${d.stateRoot} did not start; see ${d.log}`);
}

// Stop it (nothing, and no lock taken, when none runs: its directory is never made for that).
export async function stopDetached(d: Detached): Promise<void> {
  if (!(await runningDetached(d))) return;
  await holdingDetached(d, async () => {
    const live = await runningDetached(d);
    if (!live) return;
    process.kill(live.pid, "SIGTERM");
    for (let i = 0; i < 500 && isAlive(live.pid, live.startTime); i++) await sleep(10);
  });
}

export async function reloadDetached(d: Detached): Promise<void> {
  const live = await runningDetached(d);
  if (live) process.kill(live.pid, "SIGHUP");
}
