// One job at a time per key inside this process (e.g. per file): a promise queue per key.
const tails = new Map<string, Promise<void>>();

// Run job after every job queued before it under the same key; returns the job's result.
export function serialized<T>(key: string, job: () => Promise<T>): Promise<T> {
  const prev = tails.get(key) ?? Promise.resolve();
  const run = prev.then(job);
  const tail = run.then(
    () => undefined,
    () => undefined,
  );
  tails.set(key, tail);
  void tail.then(() => {
    if (tails.get(key) === tail) tails.delete(key); // idle: forget the key
  });
  return run;
}
