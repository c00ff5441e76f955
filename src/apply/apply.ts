// apply: execute a plan's actions in order, journaled and recorded in the ledger.
// The engine never prints; it reports through hooks that the CLI renders.
import { readdir, rm } from "node:fs/promises";
import path from "node:path";
import type { StatePaths } from "../cells/layout.js";
import type { Action } from "../plan/actions.js";
import type { Ledger } from "../ledger/ledger.js";
import { assertNever, errorMessage } from "../util/errors.js";
import { failpoint } from "../util/failpoint.js";
import { Journal } from "./journal.js";
import * as ops from "./ops.js";

export type ActionResult =
  | { status: "applied"; action: Action; details: ops.Details }
  | { status: "failed"; action: Action; error: string }
  | { status: "skipped"; action: Action; because: string };

export interface ApplyHooks {
  preApply?(action: Action): void;
  postApply?(result: ActionResult): void;
  // Asked before each action; false stops the run there (a daemon told to stop finishes the
  // action in progress and starts no other).
  shouldContinue?(): boolean;
}

function run(action: Action, env: ops.ApplyEnv): Promise<ops.Details> {
  switch (action.kind) {
    case "create":
      return ops.create(action, env);
    case "invite":
      return ops.invite(action, env);
    case "remove-member":
      return ops.removeMember(action, env);
    case "restart":
      return ops.restart(action, env);
    case "renew":
      return ops.renew(action, env);
    case "update":
      return ops.update(action, env);
    case "close":
      return ops.close(action, env);
    case "resurrect":
      return ops.resurrect(action, env);
    case "scrub":
      return ops.scrub(action, env);
    case "purge":
      return ops.purge(action, env);
    case "member-down":
      return ops.memberDown(action, env);
    case "revoke":
      return ops.revoke(action, env);
    case "update-portfolio":
      return ops.updatePortfolio(action, env);
    case "cell-down":
      return ops.cellDown(action, env);
    case "revive":
      return ops.revive(action, env);
    case "checkpoint":
      return ops.checkpoint(action, env);
    default:
      return assertNever(action, "action");
  }
}

// Record a run that died mid-action; its effects are finished by this run's plan.
export async function recoverJournal(stateRoot: string, ledger: Ledger, now: string): Promise<void> {
  const journal = new Journal(stateRoot);
  const left = await journal.read();
  if (!left) return;
  await ledger.append({
    time: now,
    cell: left.cell,
    action: "recover",
    reason: `a run (pid ${left.pid}) stopped during ${left.action} (${left.reason}) started ${left.startedAt}; converging from what is observed`,
  });
  await journal.end();
}

// Remove what an interrupted create or scrub left half-built (only Lazarus makes these names).
export async function sweepStaging(paths: StatePaths): Promise<void> {
  const dirs = [paths.cells];
  for (const day of await readdir(paths.archive).catch(() => [] as string[])) dirs.push(path.join(paths.archive, day));
  for (const dir of dirs) {
    for (const e of await readdir(dir).catch(() => [] as string[])) {
      if (e.startsWith(".staging-") || e.startsWith(".tmp-")) await rm(path.join(dir, e), { recursive: true, force: true });
    }
  }
}

// Apply actions in order. A failed action skips the rest of its cell; other cells go on.
export async function applyActions(actions: Action[], env: ops.ApplyEnv, ledger: Ledger, hooks: ApplyHooks = {}): Promise<ActionResult[]> {
  const journal = new Journal(path.dirname(env.paths.ledger));
  const failedCells = new Map<string, string>();
  const results: ActionResult[] = [];
  const now = new Date(env.now).toISOString();
  for (const action of actions) {
    if (hooks.shouldContinue && !hooks.shouldContinue()) break;
    let result: ActionResult;
    const failedBefore = failedCells.get(action.cell);
    if (failedBefore) {
      result = { status: "skipped", action, because: `an earlier action on ${action.cell} failed: ${failedBefore}` };
    } else {
      hooks.preApply?.(action);
      await journal.begin({ cell: action.cell, action: action.kind, reason: action.reason, pid: process.pid, startedAt: now });
      try {
        const details = await run(action, env);
        failpoint(`applied:${action.kind}`);
        await ledger.append({ time: now, cell: action.cell, action: action.kind, reason: action.reason, details, ...(env.revision ? { revision: env.revision } : {}) });
        result = { status: "applied", action, details };
      } catch (err) {
        const message = errorMessage(err);
        failedCells.set(action.cell, message);
        await ledger.append({ time: now, cell: action.cell, action: `${action.kind}-failed`, reason: action.reason, details: { error: message }, ...(env.revision ? { revision: env.revision } : {}) });
        result = { status: "failed", action, error: message };
      }
      await journal.end();
    }
    results.push(result);
    hooks.postApply?.(result);
  }
  return results;
}
