// What one reconcile of a cell asks of the work queue, and the one place (settle) that turns it
// into a queue operation. The reconcile says when it wants to run again; the queue does not guess.
import { LazarusError, assertNever } from "../util/errors.js";
import type { WorkQueue } from "./queue.js";

export type Outcome =
  // Converged for now: look again after requeueAfter ms (its next time rule), or on an event only.
  | { kind: "done"; requeueAfter?: number }
  // Another process held its lock (the state dir's or the cell's): look again shortly.
  | { kind: "busy" }
  // Failed in a way that may pass by itself (I/O, a process that would not stop, a host
  // unreachable): retried with backoff (BACKOFF in queue.ts), or at its next time rule if sooner.
  | { kind: "transient"; error: string; requeueAfter?: number }
  // Failed in a way no retry can pass (something in the way to move, a refused credential, a
  // backend this host cannot run): waits for a change (an event naming it, its files or state on
  // disk changing, SIGHUP) or its next time rule.
  | { kind: "terminal"; error: string; requeueAfter?: number }
  // The daemon no longer knows the cell (no file declares it, nothing of it on disk).
  | { kind: "gone" };

// A cell whose lock another process held is looked at again this soon.
export const LOCK_RETRY_MS = 1_000;

// Turn a reconcile's outcome for a cell into what the queue does with the cell.
export function settle(queue: WorkQueue, name: string, o: Outcome): void {
  switch (o.kind) {
    case "done":
      queue.forget(name);
      if (o.requeueAfter === undefined) queue.cancel(name);
      else queue.addAfter(name, o.requeueAfter);
      return;
    case "busy":
      queue.addAfter(name, LOCK_RETRY_MS);
      return;
    case "transient":
      queue.retry(name, o.requeueAfter);
      return;
    case "terminal":
      queue.forget(name);
      if (o.requeueAfter === undefined) queue.cancel(name);
      else queue.addAfter(name, o.requeueAfter);
      return;
    case "gone":
      queue.remove(name);
      return;
    default:
      assertNever(o, "reconcile outcome");
  }
}

// Error codes (LazarusError.code) that the same attempt on the same world meets again: retrying
// them on a timer only repeats the error. Any other failure is taken as transient.
const TERMINAL_CODES = new Set([
  "BAD_SETTING",
  "BUG",
  "CELL_EXISTS",
  "CONFIG_NOT_FOUND",
  "CONFIG_UNREADABLE",
  "CONTAINER_UNAVAILABLE",
  "CREDENTIAL_REFUSED",
  "CREDENTIALS_MISSING",
  "GRAVEYARD_TAKEN",
  "KUBECONFIG",
  "MEMBER_MISSING",
  "NO_BACKEND",
  "NO_FREE_UID",
  "NOT_A_DIRECTORY",
  "NOT_SUPPORTED",
  "REMOTE_NO_SSH",
  "RESTORE_MISMATCH",
  "SANDBOX_UNAVAILABLE",
  "UNSAFE_FILE",
  "UNTRUSTED_FILE",
]);

export type FailureKind = "transient" | "terminal";

// Whether a failure with this code waits for a change (terminal) or is retried with backoff.
export function failureKind(code: string | undefined): FailureKind {
  return code !== undefined && TERMINAL_CODES.has(code) ? "terminal" : "transient";
}

// The same, for a thrown error.
export function errorKind(err: unknown): FailureKind {
  return failureKind(err instanceof LazarusError ? err.code : undefined);
}
