// A value worked out at most once per ttlMs for each key: facts of the host read per member or per
// cell file (the allowed environment, where a program is), which an apply of a thousand cells would
// otherwise read a thousand times. At most max keys are kept.
export function recentlyComputed<K, V>(ttlMs: number, max = 4096): (key: K, compute: () => V) => V {
  const seen = new Map<K, { at: number; value: V }>();
  return (key, compute) => {
    const now = Date.now();
    const hit = seen.get(key);
    if (hit && now - hit.at < ttlMs) return hit.value;
    const value = compute();
    if (seen.size >= max) seen.clear();
    seen.set(key, { at: now, value });
    return value;
  };
}

// A value read at the first ask and kept: what it threw is kept too, so a broken source is read
// once and each ask fails alike (an operator's table for one load, a host fact for a process).
export function once<V>(read: () => V): () => V {
  let done: { value: V } | { error: unknown } | undefined;
  return () => {
    done ??= (() => {
      try {
        return { value: read() };
      } catch (error) {
        return { error };
      }
    })();
    if ("error" in done) throw done.error;
    return done.value;
  };
}
