// lazarus sync: fetch the config repo, take the ref's commit whole or not at all, and apply it
// within the deletion budget.
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { statePaths } from "../cells/layout.js";
import type { Diagnostic } from "../config/diagnostics.js";
import { loadConfig } from "../config/load.js";
import { computePlan, credentialContext, resolveNow, runApply, type EngineOptions, type PlanOutcome } from "../engine.js";
import type { HostSettings } from "../host/settings.js";
import { Ledger } from "../ledger/ledger.js";
import { acquireLock } from "../lock/lock.js";
import type { ActionResult } from "../apply/apply.js";
import { checkBudget, type Budget } from "./budget.js";
import { budgetDecision, recordNotApplied, rejection, type RevisionDecision } from "./decide.js";
import { commitSubject, exportRevision, fetchRef, repoCache } from "./git.js";
import { gitopsDir, readGitopsStatus, writeGitopsStatus, type GitopsStatus, type Outcome } from "./status.js";

export interface SyncOptions {
  repo: string;
  ref: string;
  subdir?: string;
  stateDir?: string;
  now?: string;
  dryRun?: boolean;
  budget: Budget;
  allowMassClose?: boolean;
  stopTimeoutMs?: number;
  lockTimeoutMs?: number; // how long to wait for another holder of the state-dir lock
  parallelism?: number; // cells applied at once
  hostSettings?: HostSettings; // where credentials may come from (--secrets-dir, LAZARUS_*)
}

export interface SyncResult {
  revision: string;
  subject: string;
  outcome: Outcome | "dry-run";
  detail: string;
  diagnostics: Diagnostic[];
  plan?: PlanOutcome;
  results?: ActionResult[];
}

// Fetch and export the ref's commit; returns the config dir inside it.
export async function checkoutRevision(stateRoot: string, repo: string, ref: string, subdir?: string): Promise<{ revision: string; subject: string; configDir: string }> {
  const cache = repoCache(gitopsDir(stateRoot), repo);
  const revision = await fetchRef(cache, ref);
  const configDir = await configDirOf(await exportRevision(cache, revision), subdir);
  return { revision, subject: await commitSubject(cache, revision), configDir };
}

// The config dir of a revision already fetched (e.g. the one in force before a restart).
export async function revisionDir(stateRoot: string, repo: string, revision: string, subdir?: string): Promise<string> {
  return configDirOf(await exportRevision(repoCache(gitopsDir(stateRoot), repo), revision), subdir);
}

// The config dir inside an exported revision. git keeps no empty directories, so a commit that
// removed every cell file has no cells.d/: that is an empty desired state, not a missing config.
export async function configDirOf(exported: string, subdir?: string): Promise<string> {
  const configDir = subdir ? path.join(exported, subdir) : exported;
  await mkdir(path.join(configDir, "cells.d"), { recursive: true });
  return configDir;
}

export async function sync(opts: SyncOptions): Promise<SyncResult> {
  const paths = statePaths(opts.stateDir);
  const stateRoot = path.dirname(paths.ledger);
  await mkdir(stateRoot, { recursive: true });
  const { revision, subject, configDir } = await checkoutRevision(stateRoot, opts.repo, opts.ref, opts.subdir);
  // A revision is all or nothing: any file that fails to load rejects the whole commit.
  const loaded = await loadConfig(configDir, await credentialContext(opts, paths));
  const { diagnostics } = loaded;
  const engine: EngineOptions = { configDir, loaded, ...(opts.stateDir ? { stateDir: opts.stateDir } : {}), ...(opts.now ? { now: opts.now } : {}), ...(opts.hostSettings ? { hostSettings: opts.hostSettings } : {}), revision, ...(opts.stopTimeoutMs ? { stopTimeoutMs: opts.stopTimeoutMs } : {}), ...(opts.lockTimeoutMs !== undefined ? { lockTimeoutMs: opts.lockTimeoutMs } : {}), ...(opts.parallelism !== undefined ? { parallelism: opts.parallelism } : {}) };
  const base: GitopsStatus = { ...((await readGitopsStatus(stateRoot)) ?? {}), repo: opts.repo, ref: opts.ref, ...(opts.subdir ? { path: opts.subdir } : {}) };
  const at = new Date((await resolveNow(paths, opts.now)).now).toISOString();

  const rejected = rejection(revision, diagnostics, base.inForce?.revision);
  if (rejected?.outcome === "rejected") {
    const { detail } = rejected;
    if (!opts.dryRun) await record(stateRoot, opts, base, { revision, subject, at, outcome: "rejected", detail, diagnostics }, rejected);
    return { revision, subject, outcome: opts.dryRun ? "dry-run" : "rejected", detail, diagnostics };
  }
  if (opts.dryRun) {
    const plan = await computePlan(engine);
    const verdict = checkBudget(plan.plan.actions, plan.desired, plan.observed, opts.budget);
    return { revision, subject, outcome: "dry-run", detail: verdict.ok ? `plan of ${revision.slice(0, 12)}` : `would be held: ${verdict.reason}`, diagnostics: plan.diagnostics, plan };
  }
  let held: RevisionDecision | undefined;
  const outcome = await runApply(
    engine,
    {
      confirm: async (p) => {
        const decision = budgetDecision(revision, p.plan.actions, p.desired, p.observed, opts.budget, opts.allowMassClose === true);
        if (decision.outcome === "apply") return true;
        held = decision;
        return false;
      },
    },
    `lazarus sync ${opts.repo}`,
  );
  if (!outcome) {
    const decision = held as Exclude<RevisionDecision, { outcome: "apply" }>;
    await record(stateRoot, opts, base, { revision, subject, at, outcome: "held", detail: decision.detail }, decision);
    return { revision, subject, outcome: "held", detail: decision.detail, diagnostics };
  }
  const failed = outcome.results.filter((r) => r.status !== "applied").length;
  const result: Outcome = failed > 0 ? "failed" : outcome.results.length > 0 ? "applied" : "unchanged";
  if (result !== "failed" || outcome.results.length > failed) base.inForce = { revision, subject, at };
  if (base.held?.revision === revision || result === "applied" || result === "unchanged") delete base.held;
  const detail = `${outcome.results.length - failed} action(s) applied${failed ? `, ${failed} failed or skipped` : ""} from ${revision.slice(0, 12)} (${subject})`;
  base.lastAttempt = { revision, subject, at, outcome: result, detail };
  await writeGitopsStatus(stateRoot, base);
  return { revision, subject, outcome: result, detail, diagnostics: outcome.diagnostics, plan: outcome, results: outcome.results };
}

// Record a revision that was not applied, under the state-dir lock (see recordNotApplied).
async function record(stateRoot: string, opts: SyncOptions, base: GitopsStatus, attempt: NonNullable<GitopsStatus["lastAttempt"]>, decision: Exclude<RevisionDecision, { outcome: "apply" }>): Promise<void> {
  const paths = statePaths(opts.stateDir);
  const lock = await acquireLock(paths.lock, `lazarus sync ${opts.repo}`, { timeoutMs: opts.lockTimeoutMs ?? 0 });
  try {
    await recordNotApplied(stateRoot, new Ledger(paths.ledger, paths.ledgerHead), base, attempt, decision);
  } finally {
    await lock.release();
  }
}
