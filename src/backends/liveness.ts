// How a daemon can tell that a cell's members still run: each backend's capabilities say, so the
// daemon asks instead of naming backends (src/daemon/reconcile.ts, fingerprint.ts).
import { findBackend } from "./table.js";

// How often a polled backend's cells are observed again (one ssh call per host for remote).
const POLL_EVERY_MS = 15_000;

// Whether the members of a cell on this backend are local processes, alive while their pid and
// kernel start time match (isAlive in host/proc.ts).
export function hasLocalPids(backend: string): boolean {
  return findBackend(backend)?.capabilities.localPids === true;
}

// How often a cell on this backend must be observed again to see its members end (undefined:
// its members' exits are seen here).
export function pollEveryMs(backend: string): number | undefined {
  return findBackend(backend)?.capabilities.poll ? POLL_EVERY_MS : undefined;
}
