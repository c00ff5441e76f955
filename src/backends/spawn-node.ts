// The fallback start path, for a host whose perl cannot run spawner.pl (or LAZARUS_SPAWNER=node):
// node's own spawn on the main thread, the member's output through the node log pump
// (dist/backends/log-pump.js). It gives the same processes as the spawner: the supervisor and the
// pump each a session leader, the pump with an empty environment reading a real pipe into the
// log, outliving Lazarus and the supervisor. Slower (node forks itself per member, and libuv
// waits for each exec on the main thread), which is why it is the fallback.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { LogLimits } from "./backend.js";
import { openAppendNoFollow } from "../util/safe-fs.js";
import { which } from "../util/which.js";

export interface NodeSpawnRequest {
  logFile: string;
  limits: LogLimits & { pump: boolean };
  cwd: string;
  file: string;
  args: string[];
  env: Record<string, string>;
}

// The node pump as [node, log-pump.js]; undefined when running from the TypeScript sources (no
// log-pump.js beside this module): members then write straight to their logs.
export function nodePump(): [string, string] | undefined {
  const file = fileURLToPath(new URL("./log-pump.js", import.meta.url));
  return existsSync(file) ? [process.execPath, file] : undefined;
}

// Start the supervisor detached, its output into the log (through the pump where there is one);
// resolves with its pid once it has exec'd. onExit: called when it ends.
export async function nodeSpawn(req: NodeSpawnRequest, onExit?: (pid: number) => void): Promise<number> {
  const pump = req.limits.pump ? nodePump() : undefined;
  let args = req.args;
  if (pump) {
    if (req.file !== "/bin/sh" || args[0] !== "-c" || args.length < 3)
      throw new Error(
        `the node start path pumps only a "/bin/sh -c SCRIPT NAME ..." supervisor, not ${req.file} ${args[0] ?? ""}`,
      );
    const limits = [String(req.limits.maxBytes), String(req.limits.keep)];
    args = [
      "-c",
      pumped(args[1] as string),
      args[2] as string,
      pump[0],
      pump[1],
      req.logFile,
      ...limits,
      setsidPath(),
      ...args.slice(3),
    ];
  }
  const log = await openAppendNoFollow(req.logFile, 0o640); // never through a planted link or FIFO
  try {
    const child = spawn(req.file, args, {
      cwd: req.cwd,
      env: req.env,
      detached: true,
      stdio: ["ignore", log.fd, log.fd],
    });
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", reject);
    });
    child.unref();
    const pid = child.pid as number;
    if (onExit) child.once("exit", () => onExit(pid));
    return pid;
  } finally {
    await log.close();
  }
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
// scripts do (a portfolio change signals the member's group). The pump's arguments are
// positional, never in the environment the member inherits.
export function pumped(script: string): string {
  return [
    "lazarus_pump_node=$1 lazarus_pump_script=$2 lazarus_log_file=$3 lazarus_log_max=$4 lazarus_log_keep=$5 lazarus_pump_setsid=$6",
    "shift 6",
    'trap ":" HUP',
    "{",
    script,
    '} 2>&1 | { exec 3<&0; ${lazarus_pump_setsid:+"$lazarus_pump_setsid"} env -i "$lazarus_pump_node" "$lazarus_pump_script" "$lazarus_log_file" "$lazarus_log_max" "$lazarus_log_keep" <&3 3<&- & }',
  ].join("\n");
}
