// The process backend: each member runs detached in its own process group (spec §6.1, level 1).
import { spawn } from "node:child_process";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Backend, Owner, StartSpec, Started } from "./backend.js";
import { memberEnv } from "./env.js";
import { findByEnv, groupMembers, isAlive, ownsProcess, procInfo } from "./proc.js";
import { openAppendNoFollow } from "../util/safe-fs.js";
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

// `trap ":" HUP` keeps the wrapper alive when the group gets SIGHUP (a portfolio change) while the
// command, exec'd with default dispositions, receives it.
const WRAPPER = 'trap ":" HUP; "$@"; code=$?; echo "$code" > "$LAZARUS_EXIT_FILE.tmp" && mv -f "$LAZARUS_EXIT_FILE.tmp" "$LAZARUS_EXIT_FILE"; exit "$code"';

export class ProcessBackend implements Backend {
  readonly name = "process";

  // onExit: called when a process this backend started ends (the daemon's drift signal).
  constructor(
    private readonly hostEnv: NodeJS.ProcessEnv = process.env,
    private readonly onExit?: (spec: StartSpec, pid: number) => void,
  ) {}

  // node's spawn is used rather than execa: the child must outlive us, detached, with its
  // output going straight to a file we never read back.
  async start(spec: StartSpec): Promise<Started> {
    const env = memberEnv(spec, this.hostEnv);
    await mkdir(path.join(spec.home, ".hermes"), { recursive: true });
    await mkdir(path.join(spec.home, ".tmp"), { recursive: true });
    await mkdir(path.dirname(spec.logFile), { recursive: true });
    const log = await openAppendNoFollow(spec.logFile, 0o640); // never through a planted link or FIFO
    try {
      // A small sh wrapper records the command's exit code (its mtime is the exit time), so a
      // later run knows how the member ended even though Lazarus was not its parent.
      const child = spawn("/bin/sh", ["-c", WRAPPER, "lazarus-member", ...spec.command], { cwd: spec.home, env, detached: true, stdio: ["ignore", log.fd, log.fd] });
      await new Promise<void>((resolve, reject) => {
        child.once("spawn", resolve);
        child.once("error", reject);
      }).catch((err: unknown) => {
        throw new LazarusError("SPAWN_FAILED", `cannot start ${spec.identity} in cell ${spec.cell}: ${errorMessage(err)} (command ${JSON.stringify(spec.command)})`, { cause: err });
      });
      child.unref();
      const pid = child.pid as number;
      if (this.onExit) child.once("exit", () => this.onExit?.(spec, pid));
      return { pid, startTime: procInfo(pid)?.startTime };
    } finally {
      await log.close();
    }
  }

  isAlive(pid: number | undefined, startTime: number | undefined, owner?: Owner): boolean {
    return owner ? ownsProcess(pid, { ...owner, startTime }) : isAlive(pid, startTime);
  }

  // The group is ours while its leader (pid == pgid) is the recorded process; once the leader is
  // gone, the kernel keeps the pgid from being reused while any process of the group lives.
  async stop(pid: number, startTime: number | undefined, timeoutMs: number, owner?: Owner): Promise<void> {
    if (!this.isAlive(pid, startTime, owner)) return;
    const running = (): boolean => groupMembers(pid).length > 0;
    signalGroup(pid, "SIGTERM");
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!running()) return;
      await sleep(25);
    }
    signalGroup(pid, "SIGKILL");
    for (let i = 0; i < 200 && running(); i++) await sleep(10);
    if (running()) throw new LazarusError("STOP_FAILED", `process group ${pid} survived SIGKILL`);
  }

  find(spawnId: string, cell?: string): Started | undefined {
    // The group leader is the process whose pid is its own pgid.
    for (const pid of findByEnv("LAZARUS_SPAWN_ID", spawnId)) {
      const info = procInfo(pid);
      if (cell !== undefined && !ownsProcess(pid, { spawnId, cell, startTime: info?.startTime })) continue;
      if (info && info.pgid === pid && info.state !== "Z") return { pid, startTime: info.startTime };
    }
    return undefined;
  }
}
