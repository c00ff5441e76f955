// A thread that spawns members for spawn.ts's pool. libuv's spawn blocks the calling thread until
// the child has exec'd (milliseconds on a busy machine); here that blocks this thread, not the
// main one. The log fd is the main thread's (opened there without following links); it stays
// open until this thread answers, and the child has exec'd by then.
import { spawn } from "node:child_process";
import { parentPort } from "node:worker_threads";

export interface SpawnRequest {
  id: number;
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  fd: number;
}

export type SpawnReply = { id: number; pid: number } | { id: number; error: string; code?: string };

const port = parentPort;
if (port) {
  port.on("message", (m: SpawnRequest) => {
    const reply = (r: SpawnReply): void => port.postMessage(r);
    try {
      const child = spawn(m.file, m.args, { cwd: m.cwd, env: m.env, detached: true, stdio: ["ignore", m.fd, m.fd] });
      child.once("spawn", () => {
        child.unref();
        reply({ id: m.id, pid: child.pid as number });
      });
      child.once("error", (err: NodeJS.ErrnoException) => reply({ id: m.id, error: err.message, ...(err.code ? { code: err.code } : {}) }));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      reply({ id: m.id, error: e.message ?? String(err), ...(e.code ? { code: e.code } : {}) });
    }
  });
}
