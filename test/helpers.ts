// Test helpers: temp config dirs from inline files, the real CLI, and process cleanup.
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa, type ResultPromise } from "execa";
import { isAlive, procInfo } from "../src/host/proc.js";
import type { CellRecord } from "../src/cells/record.js";
import { sandboxHost } from "../src/backends/sandbox/host.js";

export const ROOT = path.resolve(import.meta.dirname, "..");
export const CLI = path.join(ROOT, "dist", "cli.js");
export const AGENT = path.join(ROOT, "test", "fixtures", "agent.mjs");

// uid bands: every test file whose cells get uids (sandbox, container and remote cells) or that
// runs something as a uid of its own takes a band of its own from this table, never a number
// written in the file: files run in parallel (vitest runs two at once), and two runs of the suite
// on one host, each given its own LAZARUS_UID_RANGE, run side by side too. The bands are cut from
// the run's range (LAZARUS_UID_RANGE; Lazarus's default 200000-299999 without it): its first
// SHARED_UIDS uids stay for cells of tests that use the run's range as it is (lowest first), then
// one band per name, in this order, each of the same size (at most 100 uids, at least 10).
// Files that only compute with uid numbers and give none to a process (argv.test.ts's view,
// service.test.ts's unit text, load.test.ts's checks of a container user) name their own.
const SHARED_UIDS = 100;
export const UID_BANDS = [
  "sandbox/attack",
  "sandbox/limits-v1",
  "sandbox/limits-v2",
  "sandbox/verify",
  "sandbox/memory",
  "sandbox/python",
  "sandbox/session",
  "sandbox/logs",
  "sandbox/defaults",
  "sandbox/disk-quota",
  "sandbox/mountinfo",
  "integration/attack-git",
  "integration/replace-sandbox",
  "integration/replace-container",
  "backends/sandbox",
  "backends/container-conformance",
  "backends/container",
  "backends/container-user", // a user given in a container cell: no account, outside the cell range
  "backends/container-session",
  "backends/container-logs",
  "backends/container-verify",
  "backends/container-disk",
  "backends/container-release",
  "backends/restore-as-cell",
  "backends/remote", // a control-socket dir owned by another uid
  "backends/remote-hosts", // the ssh test user of remote.test.ts and remote-conformance.test.ts
  "backends/remote-bounds",
  "security/committer-sandbox",
  "egress/sandbox",
  "egress/container",
  "egress/container-tools",
  "bridge/sandbox-bridge",
  "gateway/sandbox-sdk",
] as const;
export type UidBandName = (typeof UID_BANDS)[number];

export interface UidBand {
  first: number;
  last: number;
  range: string; // as LAZARUS_UID_RANGE takes it: "first-last"
}

// The band of the name's test file, out of range (LAZARUS_UID_RANGE by default).
export function uidBand(name: UidBandName, range = process.env.LAZARUS_UID_RANGE ?? "200000-299999"): UidBand {
  const m = /^(\d+)-(\d+)$/.exec(range);
  if (!m) throw new Error(`LAZARUS_UID_RANGE "${range}" is not a range like 299000-299999`);
  const [first, last] = [Number(m[1]), Number(m[2])];
  const size = Math.min(100, Math.floor((last - first + 1 - SHARED_UIDS) / UID_BANDS.length));
  if (size < 10)
    throw new Error(
      `LAZARUS_UID_RANGE ${range} is too small for the test files' uid bands: ` +
        `${SHARED_UIDS + 10 * UID_BANDS.length} uids at least (see uidBand in test/helpers.ts)`,
    );
  const at = first + SHARED_UIDS + UID_BANDS.indexOf(name) * size;
  return { first: at, last: at + size - 1, range: `${at}-${at + size - 1}` };
}

export function tempDir(prefix = "lazarus-test-"): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

// A config dir with cells.d/ (and portfolios/) holding the given files.
export function configDir(files: Record<string, string>, dir = tempDir("lazarus-config-")): string {
  mkdirSync(path.join(dir, "cells.d"), { recursive: true });
  mkdirSync(path.join(dir, "portfolios"), { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return dir;
}

export interface CellOpts {
  name: string;
  ttl?: string;
  grace?: string;
  retention?: string;
  state?: "active" | "closed";
  members?: {
    identity: string;
    role?: string;
    command?: string[];
    env?: Record<string, string>;
    restart?: string;
    heartbeat?: string;
    replaces?: string;
  }[];
  extra?: string; // more spec lines, already indented by two spaces
}

// YAML for one cell; members default to one running agent.
export function cellYaml(o: CellOpts): string {
  const members = o.members ?? [{ identity: "agent:allegro", role: "executor", command: ["node", AGENT] }];
  const lines = [
    "apiVersion: lazarus/v1",
    "kind: Cell",
    "metadata:",
    `  name: ${o.name}`,
    "spec:",
    `  project: Org/repo#1`,
    "  owner: human:alexander",
    ...(o.ttl ? [`  ttl: ${o.ttl}`] : []),
    ...(o.grace ? [`  grace: ${o.grace}`] : []),
    ...(o.retention ? [`  retention: ${o.retention}`] : []),
    ...(o.state ? [`  state: ${o.state}`] : []),
    ...(o.extra ? [o.extra] : []),
    "  members:",
    ...members.flatMap((m) => [
      `    - identity: ${m.identity}`,
      `      role: ${m.role ?? "executor"}`,
      ...(m.command ? [`      command: ${JSON.stringify(m.command)}`] : []),
      ...(m.env ? [`      env: ${JSON.stringify(m.env)}`] : []),
      ...(m.restart ? [`      restart: ${m.restart}`] : []),
      ...(m.heartbeat ? [`      heartbeat: ${m.heartbeat}`] : []),
      ...(m.replaces ? [`      replaces: ${m.replaces}`] : []),
    ]),
  ];
  return `${lines.join("\n")}\n`;
}

export interface CliResult {
  exitCode: number | undefined;
  signal: string | undefined;
  stdout: string;
  stderr: string;
}

// Run the real CLI; never throws on a non-zero exit.
// timeoutMs: kill it (SIGKILL) after this long, so a test of "never hangs" fails instead of hanging.
export async function lazarus(
  args: string[],
  opts: { env?: Record<string, string>; input?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  const r = await execa("node", [CLI, ...args], {
    reject: false,
    env: { NO_COLOR: "1", ...(opts.env ?? {}) },
    ...(opts.input !== undefined ? { input: opts.input } : {}),
    ...(opts.timeoutMs ? { timeout: opts.timeoutMs, killSignal: "SIGKILL" as const } : {}),
  });
  return { exitCode: r.exitCode, signal: r.signal, stdout: String(r.stdout ?? ""), stderr: String(r.stderr ?? "") };
}

export function readRecord(dir: string): CellRecord {
  return JSON.parse(readFileSync(path.join(dir, ".lazarus", "cell.json"), "utf8")) as CellRecord;
}

// Every recorded member process under a state dir, so tests can stop what they started.
export function recordedPids(stateDir: string): { pid: number; startTime?: number }[] {
  const out: { pid: number; startTime?: number }[] = [];
  for (const place of ["cells", "graveyard"]) {
    const root = path.join(stateDir, place);
    if (!existsSync(root)) continue;
    for (const name of readdirSync(root)) {
      try {
        for (const m of readRecord(path.join(root, name)).members)
          if (m.pid) out.push({ pid: m.pid, ...(m.startTime ? { startTime: m.startTime } : {}) });
      } catch {
        // no record
      }
    }
  }
  return out;
}

// Member process groups (their leaders) whose environment carries CELL_HOME under this state dir,
// found without the records.
export function cellProcesses(stateDir: string): number[] {
  return cellProcessesAll(stateDir).filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]) === pid;
    } catch {
      return false; // exited meanwhile
    }
  });
}

// Every process (leaders and children) of the cells under this state dir.
export function cellProcessesAll(stateDir: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = readFileSync(`/proc/${entry}/environ`, "utf8").split("\0");
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
      if (state !== "Z" && env.some((e) => e.startsWith(`CELL_HOME=${stateDir}`))) found.push(Number(entry));
    } catch {
      // gone
    }
  }
  return found;
}

// SIGKILL every process of the cells under this state dir; the pids signalled.
export function killAll(stateDir: string): number[] {
  const pids = cellProcessesAll(stateDir);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  return pids;
}

// Blocks until /proc shows none of pids alive (gone or a zombie), at most ms; whether they are.
export function waitDeadSync(pids: number[], ms = 20_000): boolean {
  const end = Date.now() + ms;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    if (pids.every((p) => !isAlive(p, undefined))) return true;
    if (Date.now() >= end) return false;
    Atomics.wait(pause, 0, 0, 25);
  }
}

// The log pumps (the spawner's forks, "lazarus log-pump LOG" in ps, with an empty environment)
// whose log lies under dir.
export function pumpsUnder(dir: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (cmd.startsWith(`lazarus log-pump ${dir}/`) && isAlive(Number(entry), undefined)) found.push(Number(entry));
    } catch {
      // gone
    }
  }
  return found;
}

// End the cells' processes under each dir and remove it. A SIGKILL is not instant (less so on a
// loaded host), and a member's log pump writes its last lines once the member is gone: removing
// the tree meanwhile fails (ENOTEMPTY). So the removal waits until /proc shows the members and
// their pumps dead (and any started meanwhile), and retries what still races.
export function cleanup(...dirs: string[]): void {
  for (const d of dirs) {
    for (let round = 0; round < 5; round++) {
      const pids = killAll(d);
      const pumps = pumpsUnder(d);
      if (pids.length === 0 && pumps.length === 0) break;
      waitDeadSync(pids);
      if (!waitDeadSync(pumps, 5_000))
        for (const p of pumps)
          try {
            process.kill(p, "SIGKILL");
          } catch {
            // gone
          }
    }
    rmSync(d, { recursive: true, force: true, maxRetries: 5 });
  }
}

export async function waitFor(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("condition not met in time");
}

export { isAlive };

// A TCP port on 127.0.0.1 that was free a moment ago (for a server the test starts).
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

// The kernel's state letter of pid (R, S, Z, …), or undefined when there is no such process.
export const procState = (pid: number): string | undefined => procInfo(pid)?.state;

// What this host says of a sandbox cell when it cannot run the sandbox backend (no bubblewrap,
// not root, no user namespaces): undefined where it can. A fresh machine without those tools
// says it of every sandbox example; such tests accept exactly that error and print why.
export function sandboxHostProblem(): string | undefined {
  const problems = sandboxHost().problems;
  return problems.length ? problems.join("; ") : undefined;
}

// The error validate gives a sandbox cell on such a host (formatted, at spec.backend).
export const SANDBOX_UNAVAILABLE = /^(?:.*: )?error: spec\.backend: backend sandbox cannot run on this host: /;

// A `lazarus watch` a test started: its output so far, as text and as parsed JSON lines.
export interface Watch {
  child: ResultPromise;
  readonly pid: number;
  readonly logs: string;
  lines(): Record<string, unknown>[];
  exited(): boolean;
  // End it (SIGKILL to its pid) and wait until /proc shows it gone.
  stop(): Promise<void>;
}

const watches: Watch[] = [];

const parseLine = (l: string): Record<string, unknown> => {
  try {
    return JSON.parse(l) as Record<string, unknown>;
  } catch {
    return { msg: l };
  }
};

// SIGKILL to the watch's own pid while it is not yet reaped (so the pid is still the watch's; the
// members it started run in sessions of their own and are left for cleanup() to end), then waits
// for its exit and for /proc to show it gone or a zombie (never kill -0).
async function stopWatch(child: ResultPromise, pid: number): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await child;
  await waitFor(() => !isAlive(pid, undefined), 30_000);
}

// Start `lazarus watch` with these arguments (and environment), collecting its output. It stays in
// the test runner's process group: a Ctrl-C of the run, and execa's clean-up when the runner
// exits, reach it too.
export function startWatch(args: string[], env: Record<string, string> = {}): Watch {
  const child = execa("node", [CLI, "watch", ...args], {
    reject: false,
    env: { NO_COLOR: "1", ...env },
  });
  if (child.pid === undefined) throw new Error("lazarus watch did not start");
  const pid = child.pid;
  let logs = "";
  child.stdout?.on("data", (d: Buffer) => (logs += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (logs += d.toString()));
  const w: Watch = {
    child,
    pid,
    get logs() {
      return logs;
    },
    lines: () => logs.split("\n").filter(Boolean).map(parseLine),
    exited: () => child.exitCode !== null || child.signalCode !== null,
    stop: () => stopWatch(child, pid),
  };
  watches.push(w);
  return w;
}

// Start `lazarus watch` and wait until it says it is watching; throws with its output if it exits first.
export async function startWatching(args: string[], env: Record<string, string> = {}, ms = 20_000): Promise<Watch> {
  const w = startWatch(args, env);
  await waitFor(() => w.logs.includes('"msg":"watching"') || w.exited(), ms);
  if (w.exited()) throw new Error(`watch exited at start:\n${w.logs}`);
  return w;
}

// Stop every watch startWatch started (see Watch.stop).
export async function stopWatches(): Promise<void> {
  for (const w of watches.splice(0)) await w.stop();
}
