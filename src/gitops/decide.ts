// The GitOps decision for one fetched revision, shared by `lazarus sync` and `lazarus watch --repo`:
// reject it whole when a file fails to load, hold it when it would close too many cells, else
// apply it; and the one way a revision that was not applied is recorded.
import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { formatDiagnostic, hasErrors, type Diagnostic } from "../config/diagnostics.js";
import type { Desired } from "../config/types.js";
import type { Ledger } from "../ledger/ledger.js";
import type { Observed } from "../observe/observe.js";
import type { Action } from "../plan/actions.js";
import { writeTextAtomic } from "../util/fsx.js";
import { checkBudget, type Budget } from "./budget.js";
import { gitopsDir, readGitopsStatus, writeGitopsStatus, type GitopsStatus, type Outcome } from "./status.js";

export type RevisionDecision =
  | { outcome: "rejected"; detail: string; diagnostics: Diagnostic[] }
  | { outcome: "held"; detail: string; closes: string[]; reason: string }
  | { outcome: "apply" };

// Rejected when any file of the revision fails to load (all or nothing), else undefined. Pure.
export function rejection(
  revision: string,
  diagnostics: Diagnostic[],
  inForce: string | undefined,
): RevisionDecision | undefined {
  if (!hasErrors(diagnostics)) return undefined;
  const errors = diagnostics.filter((d) => d.severity === "error");
  const first = errors[0] as Diagnostic;
  const detail = `commit ${revision.slice(0, 12)} rejected: ${formatDiagnostic(first)}${diagnostics.length > 1 ? ` (and ${diagnostics.length - 1} more)` : ""}; revision ${inForce?.slice(0, 12) ?? "(none)"} stays in force`;
  return { outcome: "rejected", detail, diagnostics };
}

// Held when the plan would close more cells than the budget lets through, unless approved. Pure.
export function budgetDecision(
  revision: string,
  actions: Action[],
  desired: Desired,
  observed: Observed,
  budget: Budget,
  approved: boolean,
): RevisionDecision {
  if (approved) return { outcome: "apply" };
  const verdict = checkBudget(actions, desired, observed, budget);
  if (verdict.ok) return { outcome: "apply" };
  const detail = `commit ${revision.slice(0, 12)} held by the deletion budget: ${verdict.reason}; run lazarus apply --allow-mass-close (or lazarus sync --allow-mass-close) to let it through, or push a commit that changes the plan`;
  return { outcome: "held", detail, closes: verdict.closes, reason: verdict.reason };
}

// Record a revision that was not applied (rejected or held) in the gitops status, and in the ledger
// once per revision and outcome. The caller holds the state-dir lock.
export async function recordNotApplied(
  stateRoot: string,
  ledger: Ledger,
  status: GitopsStatus,
  attempt: NonNullable<GitopsStatus["lastAttempt"]>,
  decision: Exclude<RevisionDecision, { outcome: "apply" }>,
): Promise<void> {
  const repeat = status.lastAttempt?.revision === attempt.revision && status.lastAttempt.outcome === attempt.outcome;
  if (decision.outcome === "held")
    status.held = { revision: attempt.revision, closes: decision.closes, reason: decision.reason, at: attempt.at };
  status.lastAttempt = attempt;
  await writeGitopsStatus(stateRoot, status);
  const action = decision.outcome === "rejected" ? "revision-rejected" : "mass-close-held";
  if (!repeat)
    await ledger.append({
      time: attempt.at,
      cell: "-",
      action,
      reason: attempt.detail ?? "",
      revision: attempt.revision,
    });
}

// A fetched revision, loaded.
export interface Candidate {
  revision: string;
  subject: string;
  configDir: string;
  loaded: { desired: Desired; diagnostics: Diagnostic[] };
}

export interface JudgeContext {
  stateRoot: string;
  ledger: Ledger;
  repo: { url: string; ref: string; subdir?: string };
  budget: Budget;
  allowMassClose: boolean; // `sync --allow-mass-close`
  now: number;
  inForce?: string; // the revision the caller has in force, when the status file has none yet
  observeAndPlan(desired: Desired): Promise<{ observed: Observed; actions: Action[] }>;
}

export interface Judged {
  decision: RevisionDecision;
  status: GitopsStatus; // as read, with the repo fields set (and updated when not applied)
  at: string;
  planned?: { observed: Observed; actions: Action[] }; // the plan the budget judged, when one was made
}

// The GitOps decision, the one way `sync` and `watch --repo` take a revision: rejected when a file
// fails to load, else let through when approved (`--allow-mass-close`, or `apply
// --allow-mass-close` while the daemon runs, which leaves <state>/gitops/approve), else held when
// its plan closes more cells than the budget allows. A revision not applied is recorded here.
// The caller holds the state-dir lock and acts on "apply" (then calls recordInForce).
export async function judgeRevision(ctx: JudgeContext, c: Candidate): Promise<Judged> {
  const status: GitopsStatus = {
    ...((await readGitopsStatus(ctx.stateRoot)) ?? {}),
    repo: ctx.repo.url,
    ref: ctx.repo.ref,
  };
  if (ctx.repo.subdir) status.path = ctx.repo.subdir;
  const at = new Date(ctx.now).toISOString();
  const approved = ctx.allowMassClose || (await approvedRevision(ctx.stateRoot)) === c.revision;
  let decision = rejection(c.revision, c.loaded.diagnostics, status.inForce?.revision ?? ctx.inForce);
  let planned: Judged["planned"];
  if (!decision) {
    planned = await ctx.observeAndPlan(c.loaded.desired);
    decision = budgetDecision(c.revision, planned.actions, c.loaded.desired, planned.observed, ctx.budget, approved);
  }
  if (decision.outcome !== "apply") {
    const attempt = {
      revision: c.revision,
      subject: c.subject,
      at,
      outcome: decision.outcome,
      detail: decision.detail,
      ...(decision.outcome === "rejected" ? { diagnostics: decision.diagnostics } : {}),
    };
    await recordNotApplied(ctx.stateRoot, ctx.ledger, status, attempt, decision);
  }
  return { decision, status, at, ...(planned ? { planned } : {}) };
}

// Record a revision as in force (its attempt's outcome and detail), clearing a hold and an
// approval. The caller holds the state-dir lock.
export async function recordInForce(
  stateRoot: string,
  status: GitopsStatus,
  c: Pick<Candidate, "revision" | "subject">,
  at: string,
  outcome: Outcome,
  detail: string,
  inForce = true,
): Promise<void> {
  if (inForce) status.inForce = { revision: c.revision, subject: c.subject, at };
  if (status.held?.revision === c.revision || outcome === "applied" || outcome === "unchanged") delete status.held;
  status.lastAttempt = { revision: c.revision, subject: c.subject, at, outcome, detail };
  await writeGitopsStatus(stateRoot, status);
  if ((await approvedRevision(stateRoot)) === c.revision) await rm(approveFile(stateRoot), { force: true });
}

function approveFile(stateRoot: string): string {
  return path.join(gitopsDir(stateRoot), "approve");
}

// The revision `apply --allow-mass-close` approved while a daemon runs, if any.
export async function approvedRevision(stateRoot: string): Promise<string | undefined> {
  const text = await readFile(approveFile(stateRoot), "utf8").catch(() => "");
  return text.trim() || undefined;
}

// Approve a held revision for the running daemon, which lets it through at its next poll.
export function approveRevision(stateRoot: string, revision: string): Promise<void> {
  return writeTextAtomic(approveFile(stateRoot), `${revision}\n`);
}
