// Crash injection for tests: LAZARUS_FAILPOINT=<name> kills this process with SIGKILL at that
// point, so tests can prove that a crash anywhere converges on the next run.
import { setTimeout as sleep } from "node:timers/promises";
import { existsSync } from "node:fs";

export function failpoint(name: string): void {
  if (process.env.LAZARUS_FAILPOINT === name) process.kill(process.pid, "SIGKILL");
}

// Hold-up injection for tests: LAZARUS_PAUSEPOINT=<name>:<ms> makes this process wait that long
// the first time it reaches that point (an edit made during the daemon's first pass, say), and
// LAZARUS_PAUSEPOINT=<name>@<file> makes it wait there for as long as <file> exists (a checkpoint
// held with its cell frozen), each saying so on stderr first, so a test can act meanwhile.
let paused = false;
export async function pausepoint(name: string): Promise<void> {
  const spec = process.env.LAZARUS_PAUSEPOINT;
  if (spec?.startsWith(`${name}@`)) {
    const file = spec.slice(name.length + 1);
    if (existsSync(file)) process.stderr.write(`lazarus: pausepoint ${name}: waiting while ${file} exists\n`);
    while (existsSync(file)) await sleep(50);
    return;
  }
  if (paused || !spec?.startsWith(`${name}:`)) return;
  paused = true;
  const ms = Number(spec.slice(name.length + 1));
  if (!Number.isFinite(ms) || ms <= 0) return;
  process.stderr.write(`lazarus: pausepoint ${name}: waiting ${ms} ms\n`);
  await sleep(ms);
}
