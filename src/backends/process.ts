// The process backend: each member runs detached in its own process group (spec §6.1, level 1).
import { spawn } from "node:child_process";
import { mkdir, open } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Backend, StartSpec, Started } from "./backend.js";
import { memberEnv } from "./env.js";
import { findByEnv, isAlive, procInfo } from "./proc.js";
import { LazarusError, errorMessage } from "../util/errors.js";

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal); // not a group leader after all
    } catch {
      // already gone
    }
  }
}

export class ProcessBackend implements Backend {
  readonly name = "process";

  constructor(private readonly hostEnv: NodeJS.ProcessEnv = process.env) {}

  // node's spawn is used rather than execa: the child must outlive us, detached, with its
  // output going straight to a file we never read back.
  async start(spec: StartSpec): Promise<Started> {
    const env = memberEnv(spec, this.hostEnv);
    await mkdir(path.join(spec.home, ".hermes"), { recursive: true });
    await mkdir(path.join(spec.home, ".tmp"), { recursive: true });
    await mkdir(path.dirname(spec.logFile), { recursive: true });
    const log = await open(spec.logFile, "a", 0o640);
    try {
      const [file, ...args] = spec.command;
      const child = spawn(file as string, args, { cwd: spec.home, env, detached: true, stdio: ["ignore", log.fd, log.fd] });
      await new Promise<void>((resolve, reject) => {
        child.once("spawn", resolve);
        child.once("error", reject);
      }).catch((err: unknown) => {
        throw new LazarusError("SPAWN_FAILED", `cannot start ${spec.identity} in cell ${spec.cell}: ${errorMessage(err)} (command ${JSON.stringify(spec.command)})`, { cause: err });
      });
      child.unref();
      const pid = child.pid as number;
      return { pid, startTime: procInfo(pid)?.startTime };
    } finally {
      await log.close();
    }
  }

  isAlive(pid: number | undefined, startTime: number | undefined): boolean {
    return isAlive(pid, startTime);
  }

  async stop(pid: number, startTime: number | undefined, timeoutMs: number): Promise<void> {
    if (!isAlive(pid, startTime)) return;
    signalGroup(pid, "SIGTERM");
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!isAlive(pid, startTime)) return;
      await sleep(25);
    }
    signalGroup(pid, "SIGKILL");
    for (let i = 0; i < 200 && isAlive(pid, startTime); i++) await sleep(10);
    if (isAlive(pid, startTime)) throw new LazarusError("STOP_FAILED", `process ${pid} survived SIGKILL`);
  }

  find(spawnId: string): Started | undefined {
    // The group leader is the process whose pid is its own pgid.
    for (const pid of findByEnv("LAZARUS_SPAWN_ID", spawnId)) {
      const info = procInfo(pid);
      if (info && info.pgid === pid && info.state !== "Z") return { pid, startTime: info.startTime };
    }
    return undefined;
  }
}
