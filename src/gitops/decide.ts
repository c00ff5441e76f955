// The GitOps decision for one fetched revision, shared by `lazarus sync` and `lazarus watch --repo`:
// reject it whole when a file fails to load, hold it when it would close too many cells, else
// apply it; and the one way a revision that was not applied is recorded.
import { formatDiagnostic, hasErrors, type Diagnostic } from "../config/diagnostics.js";
import type { Desired } from "../config/types.js";
import type { Ledger } from "../ledger/ledger.js";
import type { Observed } from "../observe/observe.js";
import type { Action } from "../plan/actions.js";
import { checkBudget, type Budget } from "./budget.js";
import { writeGitopsStatus, type GitopsStatus } from "./status.js";

export type RevisionDecision =
  | { outcome: "rejected"; detail: string; diagnostics: Diagnostic[] }
  | { outcome: "held"; detail: string; closes: string[]; reason: string }
  | { outcome: "apply" };

// Rejected when any file of the revision fails to load (all or nothing), else undefined. Pure.
export function rejection(revision: string, diagnostics: Diagnostic[], inForce: string | undefined): RevisionDecision | undefined {
  if (!hasErrors(diagnostics)) return undefined;
  const errors = diagnostics.filter((d) => d.severity === "error");
  const first = errors[0] as Diagnostic;
  const detail = `commit ${revision.slice(0, 12)} rejected: ${formatDiagnostic(first)}${diagnostics.length > 1 ? ` (and ${diagnostics.length - 1} more)` : ""}; revision ${inForce?.slice(0, 12) ?? "(none)"} stays in force`;
  return { outcome: "rejected", detail, diagnostics };
}

// Held when the plan would close more cells than the budget lets through, unless approved. Pure.
export function budgetDecision(revision: string, actions: Action[], desired: Desired, observed: Observed, budget: Budget, approved: boolean): RevisionDecision {
  if (approved) return { outcome: "apply" };
  const verdict = checkBudget(actions, desired, observed, budget);
  if (verdict.ok) return { outcome: "apply" };
  const detail = `commit ${revision.slice(0, 12)} held by the deletion budget: ${verdict.reason}; run lazarus apply --allow-mass-close (or lazarus sync --allow-mass-close) to let it through, or push a commit that changes the plan`;
  return { outcome: "held", detail, closes: verdict.closes, reason: verdict.reason };
}

// Record a revision that was not applied (rejected or held) in the gitops status, and in the ledger
// once per revision and outcome. The caller holds the state-dir lock.
export async function recordNotApplied(stateRoot: string, ledger: Ledger, status: GitopsStatus, attempt: NonNullable<GitopsStatus["lastAttempt"]>, decision: Exclude<RevisionDecision, { outcome: "apply" }>): Promise<void> {
  const repeat = status.lastAttempt?.revision === attempt.revision && status.lastAttempt.outcome === attempt.outcome;
  if (decision.outcome === "held") status.held = { revision: attempt.revision, closes: decision.closes, reason: decision.reason, at: attempt.at };
  status.lastAttempt = attempt;
  await writeGitopsStatus(stateRoot, status);
  const action = decision.outcome === "rejected" ? "revision-rejected" : "mass-close-held";
  if (!repeat) await ledger.append({ time: attempt.at, cell: "-", action, reason: attempt.detail ?? "", revision: attempt.revision });
}
