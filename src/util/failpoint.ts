// Crash injection for tests: LAZARUS_FAILPOINT=<name> kills this process with SIGKILL at that
// point, so tests can prove that a crash anywhere converges on the next run.
export function failpoint(name: string): void {
  if (process.env.LAZARUS_FAILPOINT === name) process.kill(process.pid, "SIGKILL");
}
