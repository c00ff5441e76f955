// Ending what a benchmark started when it does not get to its own clean-up: on SIGINT or SIGTERM
// (Ctrl-C, a kill of the bench) and on an exit before its finally blocks ran (process.exit, an
// uncaught error). Each long-lived thing a bench starts (a `lazarus watch`, supervisord, the
// members a state dir recorded) registers how to end it:
//
//   const done = onTeardown(() => killNow(), () => stopGently());   // returns: unregister
//   ...
//   done();                                                        // ended by the bench itself
//
// On a signal each registered `gently` (or `now`) runs, newest first, at most 60 s in all, then
// the bench exits with 128 + the signal's number; on exit only `now` can run (it must be
// synchronous: no promise is awaited there). Nothing is signalled by name or pattern: each step
// ends only the pids and process groups its bench started.
import type { ChildProcess } from "node:child_process";
import { constants } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";

interface Step {
  now: () => void;
  gently?: () => Promise<unknown>;
}

const steps: Step[] = [];
let installed = false;
let ending = false;

// Register how to end one thing; returns the function that unregisters it (call it once the
// bench has ended that thing itself).
export function onTeardown(now: () => void, gently?: () => Promise<unknown>): () => void {
  install();
  const step: Step = gently ? { now, gently } : { now };
  steps.push(step);
  return () => {
    const i = steps.indexOf(step);
    if (i >= 0) steps.splice(i, 1);
  };
}

// SIGKILL to a process group (or a pid when it leads none), ignoring one that is gone.
export function killGroup(pid: number | undefined, signal: NodeJS.Signals = "SIGKILL"): void {
  if (!pid) return;
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, signal);
      return;
    } catch {
      // not a group leader, or gone
    }
  }
}

function runNow(): void {
  for (const s of steps.splice(0).reverse()) {
    try {
      s.now();
    } catch (err) {
      console.error(`teardown: ${(err as Error).message}`);
    }
  }
}

async function onSignal(signal: NodeJS.Signals): Promise<void> {
  if (ending) return;
  ending = true;
  console.error(`\n${signal}: ending what this bench started`);
  const gentle = (async () => {
    for (const s of [...steps].reverse()) {
      if (!s.gently) continue;
      await s.gently().catch((err: unknown) => console.error(`teardown: ${(err as Error).message}`));
      const i = steps.indexOf(s);
      if (i >= 0) steps.splice(i, 1);
    }
  })();
  await Promise.race([gentle, sleep(60_000)]);
  runNow();
  process.exit(128 + (constants.signals[signal] ?? 0));
}

function install(): void {
  if (installed) return;
  installed = true;
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, (s) => void onSignal(s));
  process.on("exit", runNow);
}

// A child the bench started (a `lazarus watch`, a server) ended if the bench is interrupted: SIGTERM
// and its exit awaited (SIGKILL after 10 s) when there is time, SIGKILL on exit. Unregistered by
// itself once the child exits.
export function endOnTeardown(child: ChildProcess): () => void {
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  const undo = onTeardown(
    () => {
      if (running()) killGroup(child.pid);
    },
    async () => {
      if (!running()) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      if ((await Promise.race([exited, sleep(10_000, "late")])) === "late") killGroup(child.pid);
      await exited;
    },
  );
  child.once("exit", undo);
  return undo;
}
