// Publication after a reconcile: queue what the cells' files call for, then work the outbox, under
// the outbox's own lock (one publisher per state dir; another one busy means this one skips).
// It runs after every action of the apply is done and recorded, and it never throws: a forge that
// is down or refuses leaves entries pending or failed, never a cell failed or an apply failed.
import path from "node:path";
import type { StatePaths } from "../cells/layout.js";
import type { Ledger } from "../ledger/ledger.js";
import type { HostSettings } from "../host/settings.js";
import { acquireLock } from "../lock/lock.js";
import { LazarusError, errorMessage } from "../util/errors.js";
import { queueComments } from "./queue.js";
import { forgeTable } from "./table.js";
import { outboxLockFile, workOutbox, type WorkReport } from "./worker.js";
import { pushFacts, queuePushes, readPushEntries, workPushes, type PushReport } from "./pushes.js";

export interface PublishOptions {
  paths: StatePaths;
  ledger: Ledger;
  hostEnv: NodeJS.ProcessEnv;
  host: HostSettings;
  now: number; // the run's time (when a member is seen to have left)
  budgetMs: number;
  retryFailed?: boolean;
  command: string;
}

export type PublishOutcome =
  | { status: "off" } // no forge table on this host
  | { status: "busy"; holder: string }
  | { status: "worked"; report: WorkReport; pushes?: PushReport }
  | { status: "error"; error: string };

// The default time apply keeps waiting for retries before it leaves them to the next run.
export const APPLY_PUBLISH_BUDGET_MS = 10_000;

export async function publishComments(o: PublishOptions): Promise<PublishOutcome> {
  try {
    const forges = forgeTable(o.hostEnv);
    if (forges.length === 0) return { status: "off" };
    const stateRoot = path.dirname(o.paths.ledger);
    let lock;
    try {
      lock = await acquireLock(outboxLockFile(stateRoot), o.command, { timeoutMs: 0 });
    } catch (err) {
      if (err instanceof LazarusError && err.code === "LOCKED") return { status: "busy", holder: err.message };
      throw err;
    }
    try {
      // Pushes first, so that a close comment can say what was pushed.
      const stamp = new Date(o.now).toISOString();
      const queued = await queuePushes(stateRoot, o.paths, forges, stamp);
      const pushes = queued.length
        ? await workPushes({
            stateRoot,
            forges,
            host: o.host,
            ledger: o.ledger,
            ledgerTime: o.now,
            ...(o.retryFailed ? { retryFailed: true } : {}),
          })
        : undefined;
      const facts = pushFacts(pushes ? await readPushEntries(stateRoot) : queued);
      await queueComments(stateRoot, o.paths, forges, stamp, facts);
      const report = await workOutbox({
        stateRoot,
        forges,
        host: o.host,
        ledger: o.ledger,
        budgetMs: o.budgetMs,
        ledgerTime: o.now,
        ...(o.retryFailed ? { retryFailed: true } : {}),
      });
      return { status: "worked", report, ...(pushes ? { pushes } : {}) };
    } finally {
      await lock.release();
    }
  } catch (err) {
    return { status: "error", error: errorMessage(err) };
  }
}

// One line for people, or undefined when there is nothing to say.
export function publishLine(p: PublishOutcome): string | undefined {
  switch (p.status) {
    case "off":
      return undefined;
    case "busy":
      return `publish: skipped, another Lazarus is publishing (${p.holder})`;
    case "error":
      return `publish: ${p.error}`;
    case "worked": {
      const r = p.report;
      const s = p.pushes;
      const pushed =
        s && s.pushed + s.rejected + s.failed + s.retried + s.pending > 0
          ? `${s.pushed} branch(es) pushed, ${s.rejected} rejected (not forced), ` +
            `${s.failed} failed for good, ${s.retried + s.pending} waiting`
          : undefined;
      const posted =
        r.posted + r.failed + r.pending > 0
          ? `${r.posted} comment(s) published, ${r.failed} failed for good, ${r.pending} waiting to be retried`
          : undefined;
      const parts = [posted, pushed].filter(Boolean);
      return parts.length ? `publish: ${parts.join("; ")}` : undefined;
    }
  }
}
