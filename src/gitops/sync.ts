// lazarus sync: fetch the config repo, take the ref's commit whole or not at all, and apply it
// within the deletion budget.
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { statePaths } from "../cells/layout.js";
import type { Diagnostic } from "../config/diagnostics.js";
import { loadConfig } from "../config/load.js";
import {
  applyEnv,
  cellClaims,
  computePlan,
  credentialContext,
  observeAndPlan,
  resolveNow,
  withCells,
  type EngineOptions,
  type Locked,
  type PlanOutcome,
} from "../engine.js";
import { fingerprint } from "../plan/saved.js";
import { applyActions, type ApplyHooks } from "../apply/apply.js";
import { hostSettings } from "../host/settings.js";
import { APPLY_PUBLISH_BUDGET_MS, publishComments } from "../forge/publish.js";
import type { Action } from "../plan/actions.js";
import type { Observed } from "../observe/observe.js";
import type { Plan } from "../plan/plan.js";
import type { HostSettings } from "../host/settings.js";
import type { ActionResult } from "../apply/apply.js";
import { checkBudget, type Budget } from "./budget.js";
import { judgeRevision, recordInForce, rejection, type Candidate, type Judged } from "./decide.js";
import { commitSubject, exportRevision, fetchRef, repoCache } from "./git.js";
import { gitopsDir, readGitopsStatus, type Outcome } from "./status.js";

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
  hooks?: ApplyHooks & { planned?(actions: readonly Action[]): void }; // progress of the apply
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
export async function checkoutRevision(
  stateRoot: string,
  repo: string,
  ref: string,
  subdir?: string,
): Promise<{ revision: string; subject: string; configDir: string }> {
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

// A revision fetched and loaded, and the engine options that plan and apply it.
interface Fetched {
  stateRoot: string;
  candidate: Candidate;
  engine: EngineOptions;
}

type Planned = { observed: Observed; plan: Plan };

// Fetch the ref's commit and load it. A revision is all or nothing: any file that fails to load
// rejects the whole commit (judged later, from the diagnostics).
async function fetchRevision(opts: SyncOptions): Promise<Fetched> {
  const paths = statePaths(opts.stateDir);
  const stateRoot = path.dirname(paths.ledger);
  await mkdir(stateRoot, { recursive: true });
  const { revision, subject, configDir } = await checkoutRevision(stateRoot, opts.repo, opts.ref, opts.subdir);
  const loaded = await loadConfig(configDir, await credentialContext(opts, paths));
  const engine: EngineOptions = {
    configDir,
    loaded,
    ...(opts.stateDir ? { stateDir: opts.stateDir } : {}),
    ...(opts.now ? { now: opts.now } : {}),
    ...(opts.hostSettings ? { hostSettings: opts.hostSettings } : {}),
    revision,
    ...(opts.stopTimeoutMs ? { stopTimeoutMs: opts.stopTimeoutMs } : {}),
    ...(opts.lockTimeoutMs !== undefined ? { lockTimeoutMs: opts.lockTimeoutMs } : {}),
    ...(opts.parallelism !== undefined ? { parallelism: opts.parallelism } : {}),
  };
  return { stateRoot, candidate: { revision, subject, configDir, loaded }, engine };
}

// --dry-run: the revision's plan and whether the budget would hold it; nothing is recorded.
async function dryRun(opts: SyncOptions, f: Fetched): Promise<SyncResult> {
  const { revision, subject, loaded } = f.candidate;
  const { diagnostics } = loaded;
  const rejected = rejection(revision, diagnostics, (await readGitopsStatus(f.stateRoot))?.inForce?.revision);
  if (rejected?.outcome === "rejected")
    return { revision, subject, outcome: "dry-run", detail: rejected.detail, diagnostics };
  const plan = await computePlan(f.engine);
  const verdict = checkBudget(plan.plan.actions, plan.desired, plan.observed, opts.budget);
  return {
    revision,
    subject,
    outcome: "dry-run",
    detail: verdict.ok ? `plan of ${revision.slice(0, 12)}` : `would be held: ${verdict.reason}`,
    diagnostics: plan.diagnostics,
    plan,
  };
}

// Judge the revision under the state-dir lock, keeping the plan the budget judged (the one applied).
async function judge(opts: SyncOptions, f: Fetched, l: Locked, now: number) {
  let planned: Planned | undefined;
  const judged = await l.state.hold(() =>
    judgeRevision(
      {
        stateRoot: f.stateRoot,
        ledger: l.ledger,
        repo: { url: opts.repo, ref: opts.ref, ...(opts.subdir ? { subdir: opts.subdir } : {}) },
        budget: opts.budget,
        allowMassClose: opts.allowMassClose === true,
        now,
        observeAndPlan: async (desired) => {
          planned = await observeAndPlan(l.paths, desired, now);
          return { observed: planned.observed, actions: planned.plan.actions };
        },
      },
      f.candidate,
    ),
  );
  return { judged, planned };
}

// Apply the judged plan, each cell under its own lock (a cell changed since it was judged is
// skipped), then record the revision in force under the state-dir lock again.
async function applyJudged(
  opts: SyncOptions,
  f: Fetched,
  l: Locked,
  now: number,
  judged: Judged,
  p: Planned,
): Promise<SyncResult> {
  const { paths, ledger, state } = l;
  const { revision, subject, configDir, loaded } = f.candidate;
  opts.hooks?.planned?.(p.plan.actions);
  const claim = cellClaims(paths, syncCommand(opts), opts.lockTimeoutMs ?? 0, (cell) =>
    fingerprint(p.observed.cells.get(cell)),
  );
  const results = await applyActions(
    p.plan.actions,
    { ...applyEnv(f.engine, paths, configDir, now, revision), stateLock: state },
    ledger,
    opts.hooks ?? {},
    { ...(opts.parallelism !== undefined ? { parallelism: opts.parallelism } : {}), claim },
  );
  await publishAfter(opts, f, l, now);
  const failed = results.filter((r) => r.status !== "applied").length;
  const outcome: Outcome = failed > 0 ? "failed" : results.length > 0 ? "applied" : "unchanged";
  const detail = `${results.length - failed} action(s) applied${failed ? `, ${failed} failed or skipped` : ""} from ${revision.slice(0, 12)} (${subject})`;
  const inForce = outcome !== "failed" || results.length > failed;
  await state.hold(() => recordInForce(f.stateRoot, judged.status, f.candidate, judged.at, outcome, detail, inForce));
  const all = [...loaded.diagnostics, ...p.plan.diagnostics];
  return {
    revision,
    subject,
    outcome,
    detail,
    diagnostics: all,
    plan: { paths, desired: loaded.desired, observed: p.observed, plan: p.plan, diagnostics: all },
    results,
  };
}

const syncCommand = (opts: SyncOptions): string => `lazarus sync ${opts.repo}`;

// The forge comments the applied actions queued, posted within the apply's budget (docs/forges.md).
async function publishAfter(opts: SyncOptions, f: Fetched, l: Locked, now: number): Promise<void> {
  const hostEnv = f.engine.hostEnv ?? process.env;
  await publishComments({
    paths: l.paths,
    ledger: l.ledger,
    hostEnv,
    host: f.engine.hostSettings ?? hostSettings(hostEnv),
    now,
    budgetMs: APPLY_PUBLISH_BUDGET_MS,
    command: syncCommand(opts),
  });
}

// Fetch the ref, then plan it (--dry-run) or judge and apply it. Judge under the state-dir lock;
// apply each cell under its own lock, skipping a cell that changed since it was judged, so the
// budget judges the very plan that is applied; record under the state-dir lock again.
export async function sync(opts: SyncOptions): Promise<SyncResult> {
  const f = await fetchRevision(opts);
  if (opts.dryRun) return dryRun(opts, f);
  return withCells(f.engine, syncCommand(opts), async (l) => {
    const { now } = await resolveNow(l.paths, opts.now);
    const { judged, planned } = await judge(opts, f, l, now);
    const { decision } = judged;
    const { revision, subject, loaded } = f.candidate;
    if (decision.outcome !== "apply")
      return { revision, subject, outcome: decision.outcome, detail: decision.detail, diagnostics: loaded.diagnostics };
    return applyJudged(opts, f, l, now, judged, planned as Planned);
  });
}
