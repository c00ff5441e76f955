// Spawning a member's supervisor: detached (it outlives Lazarus), its output straight to the
// member's log (opened by the caller without following links), reporting its exit to onExit.
//
// Without onExit (a one-shot apply, which never waits for its members), the spawn runs on one of
// a few worker threads: libuv's spawn blocks its thread until the child has exec'd, which on a
// busy machine costs milliseconds per member, and an apply starting many members would spend most
// of its time there. The daemon passes onExit (it must be the one that sees the exit), so it
// spawns on the main thread as before.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { StartSpec, Started } from "./backend.js";
import type { SpawnReply, SpawnRequest } from "./spawn-worker.js";
import { procInfo } from "./proc.js";
import { openAppendNoFollow } from "../util/safe-fs.js";
import { LazarusError, errorMessage } from "../util/errors.js";

export async function spawnSupervised(spec: StartSpec, file: string, args: string[], opts: { cwd: string; env: Record<string, string> }, onExit?: (spec: StartSpec, pid: number) => void): Promise<Started> {
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
