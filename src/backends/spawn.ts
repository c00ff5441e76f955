// Starting a member's supervisor: the one way, for apply and the daemon alike. The supervisor is
// detached (it outlives Lazarus), a session leader, its output through a log pump (timestamps,
// rotation) to the member's log (opened without following links), and its exit reported to
// onExit (the daemon's signal that a member ended).
//
// Where the host's perl has the modules spawner.pl loads, members start through the Perl
// spawner (spawner.ts, spawner.pl: one small process per Lazarus process, the parent of every
// member, its log pump a fork of itself); else, or with LAZARUS_SPAWNER=node, through node's own
// spawn and the node pump (spawn-node.ts). Both give the same processes, pipe and file.
// LAZARUS_LOG_PUMP=off (a cell's logs.pump false): no pump, members write straight to their log.
import type { LogLimits, StartSpec, Started } from "./backend.js";
import { nodeSpawn } from "./spawn-node.js";
import { perlSpawner, spawnerPerl } from "./spawner.js";
import { procInfo } from "../host/proc.js";
import { startSetting } from "../host/settings.js";
import { LazarusError, errorMessage } from "../util/errors.js";

// What a member's logs may take when neither its cell nor the host says: 10 MiB and 3 rotated
// files (40 MiB at most).
export const DEFAULT_LOG_LIMITS: LogLimits = { maxBytes: 10 * 1024 * 1024, keep: 3 };

// Which way members start on this host: the Perl spawner (with the perl that runs it) or node.
export type StartPath = { kind: "perl"; perl: string } | { kind: "node" };

export function startPath(env: NodeJS.ProcessEnv = process.env): StartPath {
  if (startSetting(env) === "node") return { kind: "node" };
  const perl = spawnerPerl(env);
  return perl ? { kind: "perl", perl } : { kind: "node" };
}

// Start FILE ARGS (the backend's supervisor: `/bin/sh -c SCRIPT NAME ...`) for spec's member.
export async function spawnSupervised(
  spec: StartSpec,
  file: string,
  args: string[],
  opts: { cwd: string; env: Record<string, string> },
  onExit?: (spec: StartSpec, pid: number) => void,
): Promise<Started> {
  const limits = { ...DEFAULT_LOG_LIMITS, ...spec.logs, pump: spec.logs?.pump !== false };
  const exited = onExit ? (pid: number): void => onExit(spec, pid) : undefined;
  try {
    const how = startPath();
    const pid =
      how.kind === "perl"
        ? await perlSpawner(how.perl).spawn(
            {
              pump: limits.pump,
              logFile: spec.logFile,
              maxBytes: limits.maxBytes,
              keep: limits.keep,
              cwd: opts.cwd,
              file,
              args,
              env: opts.env,
            },
            exited,
          )
        : await nodeSpawn({ logFile: spec.logFile, limits, cwd: opts.cwd, file, args, env: opts.env }, exited);
    return { pid, startTime: procInfo(pid)?.startTime };
  } catch (err) {
    if (err instanceof LazarusError) throw err;
    throw new LazarusError(
      "SPAWN_FAILED",
      `cannot start ${spec.identity} in cell ${spec.cell}: ${errorMessage(err)} (command ${JSON.stringify(spec.command)})`,
      { cause: err },
    );
  }
}
