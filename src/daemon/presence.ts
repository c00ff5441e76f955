// Whether a `lazarus watch` runs for a state dir. The daemon holds the state-dir lock only while
// it reconciles, so it announces itself in <state>/watch.pid instead: a holder record (pid, kernel
// start time, command, since) published whole with link(2) at start and removed at stop. A record
// whose process is dead (or whose pid was reused) does not count and is taken over.
import path from "node:path";
import type { StatePaths } from "../cells/layout.js";
import { acquireLock, describeHolder, type Lock, type LockHolder } from "../lock/lock.js";
import { readSeen, verdict } from "../lock/record.js";
import { LazarusError } from "../util/errors.js";

// The daemon's pid file, next to the state-dir lock.
export function daemonFile(paths: StatePaths): string {
  return path.join(path.dirname(paths.lock), "watch.pid");
}

// Claim the state dir for this daemon; fails at once naming a live daemon that already has it.
export async function claimDaemon(paths: StatePaths, command: string): Promise<Lock> {
  try {
    return await acquireLock(daemonFile(paths), command, { timeoutMs: 0 });
  } catch (err) {
    if (!(err instanceof LazarusError) || err.code !== "LOCKED") throw err;
    const holder = await runningDaemon(paths);
    throw new LazarusError(
      "LOCKED",
      `a lazarus watch already runs for this state dir${holder ? `: ${describeHolder(holder)}` : ""}; stop it first (pid file ${daemonFile(paths)})`,
    );
  }
}

// The live daemon of this state dir, or undefined when none runs.
export async function runningDaemon(paths: StatePaths): Promise<LockHolder | undefined> {
  const seen = await readSeen(daemonFile(paths)).catch(() => undefined);
  return seen?.holder && verdict(seen) === "live" ? seen.holder : undefined;
}
