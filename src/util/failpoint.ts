// Crash injection for tests: LAZARUS_FAILPOINT=<name> kills this process with SIGKILL at that
// point, so tests can prove that a crash anywhere converges on the next run.
import { existsSync } from "node:fs";

export function failpoint(name: string): void {
  if (process.env.LAZARUS_FAILPOINT === name) process.kill(process.pid, "SIGKILL");
}

// Hold-up injection for tests: LAZARUS_PAUSEPOINT=<name>@<file> makes this process wait at that
// point for as long as <file> exists, so a test can hold an operation in its middle (a checkpoint
// with its cell frozen) and look at what else goes on meanwhile.
export async function pausepoint(name: string): Promise<void> {
  const spec = process.env.LAZARUS_PAUSEPOINT;
  if (!spec?.startsWith(`${name}@`)) return;
  const file = spec.slice(name.length + 1);
  while (existsSync(file)) await new Promise((r) => setTimeout(r, 50));
}
