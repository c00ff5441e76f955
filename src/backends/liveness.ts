// How a daemon can tell that a cell's members still run, by backend: facts of the backends kept
// here, so the daemon asks instead of naming backends (src/daemon/reconcile.ts, fingerprint.ts).

// Backends whose members are local processes, alive while their pid and kernel start time match
// (isAlive in ./proc.ts): a daemon checks them on its tick and in its resync fingerprints.
const LOCAL_PIDS: ReadonlySet<string> = new Set(["process", "sandbox", "container"]);

// Backends whose members' pids are another host's: their exits are not seen from here, so a
// daemon observes their cells again this often (one ssh call per host).
const POLLED: ReadonlyMap<string, number> = new Map([["remote", 15_000]]);

// Whether the members of a cell on this backend are local processes.
export function hasLocalPids(backend: string): boolean {
  return LOCAL_PIDS.has(backend);
}

// How often a cell on this backend must be observed again to see its members end (undefined:
// its members' exits are seen here).
export function pollEveryMs(backend: string): number | undefined {
  return POLLED.get(backend);
}
