// Spawning a member's supervisor: detached (it outlives Lazarus), its output through a log pump
// (log-pump.ts: timestamps, rotation) to the member's log (opened here without following links),
// reporting its exit to onExit.
//
// The supervisor is a `sh -c SCRIPT` for every backend. pumped() wraps SCRIPT so that the
// supervisor runs it with its output into a real pipe (a shell pipeline: node only makes socket
// pairs, on which `> /dev/stderr` fails), and starts the pump on the pipe's other end in the
// background: the supervisor still lives exactly as long as SCRIPT, and the pump until the last
// writer of the pipe is gone (the member and whatever it started), so it outlives Lazarus, the
// daemon and the supervisor. The pump's arguments are positional, never in the environment the
// member inherits.
//
// Without onExit (a one-shot apply, which never waits for its members), the spawn goes to the Perl
// spawner (spawner-perl.ts: it forks cheaply and sets up the pipe and the pump itself, in place of
// pumped()'s pipeline, background job, setsid and env -i); without perl, to one of a few worker
// threads: libuv's spawn blocks its thread until the child has exec'd, which on a
// busy machine costs milliseconds per member, and an apply starting many members would spend most
// of its time there. The daemon passes onExit (it must be the one that sees the exit), so it
// spawns on the main thread as before.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import type { Socket } from "node:net";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { LogLimits, StartSpec, Started } from "./backend.js";
import type { SpawnReply, SpawnRequest } from "./spawn-worker.js";
import { PERL_PUMP } from "./log-pump-perl.js";
import { PERL_SPAWNER } from "./spawner-perl.js";
import { procInfo } from "../host/proc.js";
import { openAppendNoFollow, refusedWrite } from "../util/safe-fs.js";
import { which } from "../util/which.js";
import { LazarusError, errorMessage } from "../util/errors.js";

export async function spawnSupervised(spec: StartSpec, file: string, args: string[], opts: { cwd: string; env: Record<string, string> }, onExit?: (spec: StartSpec, pid: number) => void): Promise<Started> {
  const pump = pumpCommand();
  const withPump = pump !== undefined && spec.logs?.pump !== false && file === "/bin/sh" && args[0] === "-c" && args.length >= 3;
  const spawner = onExit ? undefined : perlSpawner();
  if (spawner) {
    const limits = spec.logs ?? DEFAULT_LOG_LIMITS;
    const pid = await spawner.spawn({ pump: withPump, logFile: spec.logFile, maxBytes: limits.maxBytes, keep: limits.keep, cwd: opts.cwd, file, args, env: opts.env }).catch((err: unknown) => {
      if (err instanceof LazarusError) throw err;
      throw new LazarusError("SPAWN_FAILED", `cannot start ${spec.identity} in cell ${spec.cell}: ${errorMessage(err)} (command ${JSON.stringify(spec.command)})`, { cause: err });
    });
    return { pid, startTime: procInfo(pid)?.startTime };
  }
  if (pump && withPump) {
    const limits = spec.logs ?? DEFAULT_LOG_LIMITS;
    args = ["-c", pumped(args[1] as string), args[2] as string, pump[0], pump[1], spec.logFile, String(limits.maxBytes), String(limits.keep), setsidPath(), ...args.slice(3)];
  }
  const log = await openAppendNoFollow(spec.logFile, 0o640); // never through a planted link or FIFO
  const failed = (err: unknown): LazarusError => new LazarusError("SPAWN_FAILED", `cannot start ${spec.identity} in cell ${spec.cell}: ${errorMessage(err)} (command ${JSON.stringify(spec.command)})`, { cause: err });
  try {
    const threads = onExit ? undefined : spawnPool();
    if (threads) {
      const pid = await threads.spawn({ file, args, cwd: opts.cwd, env: opts.env, fd: log.fd }).catch((err: unknown) => {
        throw failed(err);
      });
      return { pid, startTime: procInfo(pid)?.startTime };
    }
    const child = spawn(file, args, { cwd: opts.cwd, env: opts.env, detached: true, stdio: ["ignore", log.fd, log.fd] });
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", reject);
    }).catch((err: unknown) => {
      throw failed(err);
    });
    child.unref();
    const pid = child.pid as number;
    if (onExit) child.once("exit", () => onExit(spec, pid));
    return { pid, startTime: procInfo(pid)?.startTime };
  } finally {
    await log.close();
  }
}

// What a member's logs may take when neither its cell nor the host says: 10 MiB and 3 rotated
// files (40 MiB at most).
export const DEFAULT_LOG_LIMITS: LogLimits = { maxBytes: 10 * 1024 * 1024, keep: 3 };

// The pump as [program, its first argument]: the Perl one where the host's perl has Time::HiRes
// (a fraction of the node one's memory and start-up, see log-pump-perl.ts), else node with
// dist/backends/log-pump.js; LAZARUS_LOG_PUMP=node chooses node. Undefined when running from the
// sources (no dist/backends/log-pump.js beside this module), where members write straight to
// their log as before, whichever pump the host could run.
let pumpCmd: [string, string] | null | undefined;
export function pumpCommand(env: NodeJS.ProcessEnv = process.env): [string, string] | undefined {
  if (pumpCmd === undefined) {
    const file = fileURLToPath(new URL("./log-pump.js", import.meta.url));
    const perl = env.LAZARUS_LOG_PUMP === "node" ? undefined : which("perl", env.PATH);
    if (!existsSync(file)) pumpCmd = null;
    else if (perl && spawnSync(perl, ["-MTime::HiRes", "-MPOSIX", "-MFcntl", "-e1"], { stdio: "ignore", env: {} }).status === 0) pumpCmd = [perl, `-e${PERL_PUMP}`];
    else pumpCmd = [process.execPath, file];
  }
  return pumpCmd ?? undefined;
}

// setsid(1) (util-linux) where the host has it, else "" (the pump stays in the member's group).
let setsidBin: string | undefined;
function setsidPath(): string {
  setsidBin ??= which("setsid", process.env.PATH) ?? "";
  return setsidBin;
}

// SCRIPT run with its stdout and stderr into a pipe whose reader is the pump, started in the
// background (explicitly on the pipe: a background command's stdin is /dev/null otherwise) and, with
// setsid, in a session of its own: signals to the member's group (stop, freeze, a portfolio's
// SIGHUP) never reach it, stopping a member does not wait for it, and what a member's escaped
// children still write is logged until they close the pipe. Its environment is empty: a session
// leader without the member's spawn id and cell is never taken for the member's supervisor
// (findLeader), nor for one of the cell's processes. The supervisor ignores SIGHUP as the
// scripts do (a portfolio change signals the member's group).
export function pumped(script: string): string {
  return [
    'lazarus_pump_node=$1 lazarus_pump_script=$2 lazarus_log_file=$3 lazarus_log_max=$4 lazarus_log_keep=$5 lazarus_pump_setsid=$6',
    "shift 6",
    'trap ":" HUP',
    "{",
    script,
    '} 2>&1 | { exec 3<&0; ${lazarus_pump_setsid:+"$lazarus_pump_setsid"} env -i "$lazarus_pump_node" "$lazarus_pump_script" "$lazarus_log_file" "$lazarus_log_max" "$lazarus_log_keep" <&3 3<&- & }',
  ].join("\n");
}

// How many spawning threads: enough to overlap the exec waits of a few members.
const THREADS = 3;

interface Pool {
  spawn(req: Omit<SpawnRequest, "id">): Promise<number>;
}

let pool: Pool | undefined | null; // null: no worker file (running from the sources), spawn inline

function spawnPool(): Pool | undefined {
  if (pool !== undefined) return pool ?? undefined;
  const url = new URL("./spawn-worker.js", import.meta.url);
  if (!existsSync(fileURLToPath(url))) {
    pool = null;
    return undefined;
  }
  const workers: { w: Worker; busy: number }[] = [];
  const pending = new Map<number, { resolve(pid: number): void; reject(err: unknown): void; worker: { w: Worker; busy: number } }>();
  let next = 1;
  const make = (): { w: Worker; busy: number } => {
    const entry = { w: new Worker(url), busy: 0 };
    entry.w.unref(); // an idle pool never keeps the process alive
    entry.w.on("message", (r: SpawnReply) => {
      const p = pending.get(r.id);
      if (!p) return;
      pending.delete(r.id);
      if (--p.worker.busy === 0) p.worker.w.unref();
      if ("pid" in r) p.resolve(r.pid);
      else p.reject(Object.assign(new Error(r.error), r.code ? { code: r.code } : {}));
    });
    // A thread that fails or ends fails what it was asked (never a hang), and is replaced on demand.
    const drop = (err: unknown): void => {
      for (const [id, p] of pending) {
        if (p.worker !== entry) continue;
        pending.delete(id);
        p.reject(err);
      }
      const i = workers.indexOf(entry);
      if (i >= 0) workers.splice(i, 1);
    };
    entry.w.on("error", drop);
    entry.w.on("exit", (code) => drop(new Error(`the spawning thread exited (code ${code})`)));
    workers.push(entry);
    return entry;
  };
  pool = {
    spawn(req) {
      const idle = workers.find((x) => x.busy === 0);
      const entry = idle ?? (workers.length < THREADS ? make() : workers.reduce((a, b) => (b.busy < a.busy ? b : a)));
      if (entry.busy++ === 0) entry.w.ref();
      const id = next++;
      return new Promise<number>((resolve, reject) => {
        pending.set(id, { resolve, reject, worker: entry });
        entry.w.postMessage({ ...req, id } satisfies SpawnRequest);
      });
    },
  };
  return pool;
}

// The Perl spawner (spawner-perl.ts) of a one-shot apply: one per Lazarus process, started on the
// first member spawn where the host's perl has POSIX and Fcntl, ended when Lazarus ends (its stdin
// closes). LAZARUS_SPAWNER=node keeps node's own spawn (the worker threads above). Requests are
// answered in order; a spawner that dies fails what it was asked, and the next spawn starts another.
export interface SpawnerRequest {
  pump: boolean;
  logFile: string;
  maxBytes: number;
  keep: number;
  cwd: string;
  file: string;
  args: string[];
  env: Record<string, string>;
}

interface Spawner {
  spawn(req: SpawnerRequest): Promise<number>;
}

let spawnerPerl: string | null | undefined;
let spawnerProc: { child: ChildProcess; spawn(req: SpawnerRequest): Promise<number> } | undefined;

function perlSpawner(env: NodeJS.ProcessEnv = process.env): Spawner | undefined {
  if (spawnerPerl === undefined) {
    const perl = env.LAZARUS_SPAWNER === "node" ? undefined : which("perl", env.PATH);
    spawnerPerl = perl && spawnSync(perl, ["-MPOSIX", "-MFcntl", "-e1"], { stdio: "ignore", env: {} }).status === 0 ? perl : null;
  }
  if (!spawnerPerl) return undefined;
  return { spawn: (req) => (spawnerProc ??= startSpawner(spawnerPerl as string)).spawn(req) };
}

function startSpawner(perl: string): { child: ChildProcess; spawn(req: SpawnerRequest): Promise<number> } {
  const pump = pumpCommand();
  // The Perl pump runs in a fork of the spawner itself (spawner-perl.ts), not as a new perl each.
  const pumpArgs = pump && pump[1] === `-e${PERL_PUMP}` ? ["inline", PERL_PUMP] : (pump ?? []);
  const child = spawn(perl, [`-e${PERL_SPAWNER}`, ...pumpArgs], { stdio: ["pipe", "pipe", "ignore"], env: {} });
  const stdin = child.stdin as NonNullable<ChildProcess["stdin"]>;
  const stdout = child.stdout as NonNullable<ChildProcess["stdout"]>;
  const pending = new Map<number, { req: SpawnerRequest; resolve(pid: number): void; reject(err: unknown): void }>();
  let next = 1;
  let buffered = "";
  const idle = (): void => {
    child.unref();
    (stdout as unknown as Socket).unref();
    (stdin as unknown as Socket).unref?.();
  };
  const busy = (): void => {
    child.ref();
    (stdout as unknown as Socket).ref();
    (stdin as unknown as Socket).ref?.();
  };
  const fail = (err: unknown): void => {
    if (spawnerProc?.child === child) spawnerProc = undefined;
    for (const [id, p] of pending) {
      pending.delete(id);
      p.reject(err);
    }
  };
  stdout.setEncoding("utf8");
  stdout.on("data", (chunk: string) => {
    buffered += chunk;
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const [idText, kind, code, ...rest] = line.split(" ");
      const id = Number(idText);
      const p = pending.get(id);
      if (!p) continue;
      pending.delete(id);
      if (pending.size === 0) idle();
      if (kind !== undefined && /^\d+$/.test(kind) && code === undefined) p.resolve(Number(kind));
      else if (kind === "L") p.reject(refusedWrite(p.req.logFile, { code: code ?? "EIO" }));
      else if (kind === "K") p.reject(refusedWrite(p.req.logFile, { kind: [code, ...rest].join(" ") }));
      else p.reject(Object.assign(new Error(`spawn ${p.req.file} ${code ?? "failed"}${rest.length ? ` (${rest.join(" ")})` : ""}`), code ? { code } : {}));
    }
  });
  child.once("error", fail);
  child.once("exit", (code, signal) => fail(new Error(`the spawner exited (${signal ?? `code ${code}`})`)));
  stdin.on("error", () => undefined); // an exit follows, and fails what is pending
  idle();
  return {
    child,
    spawn(req) {
      const id = next++;
      const fields = [String(id), req.pump ? "1" : "0", req.logFile, String(req.maxBytes), String(req.keep), req.cwd, req.file, String(req.args.length), ...req.args, String(Object.keys(req.env).length), ...Object.entries(req.env).map(([k, v]) => `${k}=${v}`)];
      if (fields.some((f) => f.includes("\0"))) return Promise.reject(new Error("an argument or environment value holds a NUL byte"));
      const body = Buffer.from(fields.join("\0"));
      return new Promise<number>((resolve, reject) => {
        if (pending.size === 0) busy();
        pending.set(id, { req, resolve, reject });
        stdin.write(`${body.length}\n`);
        stdin.write(body);
      });
    },
  };
}
