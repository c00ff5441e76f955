// Crash injection for tests: LAZARUS_FAILPOINT=<name> kills this process with SIGKILL at that
// point, so tests can prove that a crash anywhere converges on the next run.
import { setTimeout as sleep } from "node:timers/promises";

export function failpoint(name: string): void {
  if (process.env.LAZARUS_FAILPOINT === name) process.kill(process.pid, "SIGKILL");
}

// Delay injection for tests: LAZARUS_PAUSEPOINT=<name>:<ms> makes this process wait that long the
// first time it reaches that point, saying so on stderr first, so a test can act while it waits
// (an edit made during the daemon's first pass, say).
let paused = false;
export async function pausepoint(name: string): Promise<void> {
  const set = process.env.LAZARUS_PAUSEPOINT;
  if (paused || !set?.startsWith(`${name}:`)) return;
  paused = true;
  const ms = Number(set.slice(name.length + 1));
  if (!Number.isFinite(ms) || ms <= 0) return;
  process.stderr.write(`lazarus: pausepoint ${name}: waiting ${ms} ms\n`);
  await sleep(ms);
}
