// Spawning a member's supervisor: detached (it outlives Lazarus), its output straight to the
// member's log (opened by the caller without following links), reporting its exit to onExit.
import { spawn } from "node:child_process";
import type { StartSpec, Started } from "./backend.js";
import { procInfo } from "./proc.js";
import { openAppendNoFollow } from "../util/safe-fs.js";
import { LazarusError, errorMessage } from "../util/errors.js";

export async function spawnSupervised(spec: StartSpec, file: string, args: string[], opts: { cwd: string; env: Record<string, string> }, onExit?: (spec: StartSpec, pid: number) => void): Promise<Started> {
  const log = await openAppendNoFollow(spec.logFile, 0o640); // never through a planted link or FIFO
  try {
    const child = spawn(file, args, { cwd: opts.cwd, env: opts.env, detached: true, stdio: ["ignore", log.fd, log.fd] });
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", reject);
    }).catch((err: unknown) => {
      throw new LazarusError("SPAWN_FAILED", `cannot start ${spec.identity} in cell ${spec.cell}: ${errorMessage(err)} (command ${JSON.stringify(spec.command)})`, { cause: err });
    });
    child.unref();
    const pid = child.pid as number;
    if (onExit) child.once("exit", () => onExit(spec, pid));
    return { pid, startTime: procInfo(pid)?.startTime };
  } finally {
    await log.close();
  }
}
