// Sources on the clock: the tick (a node-cron expression: member liveness) and the periodic
// resync (every cell, to catch what changed behind the daemon's back).
import cron from "node-cron";

export interface Stoppable {
  stop(): Promise<void>;
}

// Call fn at every tick of the cron expression (with seconds); a tick still running is not overlapped.
export function onTick(expression: string, fn: () => void): Stoppable {
  const task = cron.schedule(expression, fn, { name: "lazarus-tick", noOverlap: true });
  return { stop: async () => void (await task.stop()) };
}

// Call fn every ms (the timer does not keep the process alive by itself).
export function every(ms: number, fn: () => void): Stoppable {
  const timer = setInterval(fn, ms);
  timer.unref();
  return { stop: async () => clearInterval(timer) };
}
