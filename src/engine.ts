// One way through: load → observe → plan → apply. The CLI commands are thin shells around this.
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { statePaths, type StatePaths } from "./cells/layout.js";
import { loadConfig } from "./config/load.js";
import type { Diagnostic } from "./config/diagnostics.js";
import type { Desired } from "./config/types.js";
import { Ledger, lastRecordedTime } from "./ledger/ledger.js";
import { acquireLock } from "./lock/lock.js";
import { observe, observeNames, type Observed } from "./observe/observe.js";
import { staleCells, type SavedPlan } from "./plan/saved.js";
import { plan, type Plan } from "./plan/plan.js";
import { applyActions, recoverJournal, sweepStaging, type ActionResult, type ApplyHooks } from "./apply/apply.js";
import { ProcessBackend } from "./backends/process.js";
import { LazarusError } from "./util/errors.js";
import { cellPaths } from "./cells/layout.js";
import type { CellRecord } from "./cells/record.js";
import { readJson } from "./util/fsx.js";
import { checkpointCell } from "./apply/checkpoint.js";
import { accept, type AcceptResult } from "./apply/members.js";

export interface EngineOptions {
  configDir: string;
  stateDir?: string;
  now?: string; // ISO-8601; default the clock
  stopTimeoutMs?: number;
  hostEnv?: NodeJS.ProcessEnv;
  revision?: string; // the config commit being applied (GitOps)
}

export interface PlanOutcome {
  paths: StatePaths;
  desired: Desired;
  observed: Observed;
  plan: Plan;
  diagnostics: Diagnostic[]; // load and plan diagnostics together
}

export function resolveStateDir(stateDir: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return stateDir ?? (env.LAZARUS_STATE_DIR || undefined);
}

// The time to plan at: --now or the clock, never earlier than the last recorded time.
export async function resolveNow(paths: StatePaths, requested: string | undefined): Promise<{ now: number; diagnostics: Diagnostic[] }> {
  let now = Date.now();
  if (requested !== undefined) {
    now = Date.parse(requested);
    if (Number.isNaN(now)) throw new LazarusError("BAD_TIME", `--now "${requested}" is not an ISO-8601 time; use e.g. 2026-11-25T18:00:00Z`);
  }
  const last = await lastRecordedTime(paths.ledgerHead);
  const lastMs = last ? Date.parse(last) : Number.NaN;
  if (!Number.isNaN(lastMs) && now < lastMs) {
    const diagnostics: Diagnostic[] =
      requested !== undefined
        ? [{ severity: "warning", message: `--now ${requested} is earlier than the last recorded time ${last}; planning at ${last}`, hint: "time never runs backwards in a state dir" }]
        : [];
    return { now: lastMs, diagnostics };
  }
  return { now, diagnostics: [] };
}

export async function computePlan(opts: EngineOptions): Promise<PlanOutcome> {
  const paths = statePaths(opts.stateDir);
  const { desired, diagnostics: loadDiags } = await loadConfig(opts.configDir);
  const { now, diagnostics: timeDiags } = await resolveNow(paths, opts.now);
  const observed = await observe(paths);
  const p = plan(desired, observed, now);
  return { paths, desired, observed, plan: p, diagnostics: [...loadDiags, ...timeDiags, ...p.diagnostics] };
}

export interface ApplyOutcome extends PlanOutcome {
  results: ActionResult[];
}

// Lock the state dir, plan, let the caller confirm, apply. Returns undefined when not confirmed.
export async function runApply(
  opts: EngineOptions,
  hooks: ApplyHooks & { confirm?(outcome: PlanOutcome): Promise<boolean> } = {},
  command = "lazarus apply",
): Promise<ApplyOutcome | undefined> {
  const paths = statePaths(opts.stateDir);
  const stateRoot = path.dirname(paths.ledger);
  await mkdir(stateRoot, { recursive: true });
  const lock = await acquireLock(paths.lock, command);
  try {
    const ledger = new Ledger(paths.ledger, paths.ledgerHead);
    const outcome = await computePlan(opts);
    await recoverJournal(stateRoot, ledger, outcome.plan.now);
    await sweepStaging(paths);
    if (outcome.plan.actions.length > 0 && hooks.confirm && !(await hooks.confirm(outcome))) return undefined;
    const results = await applyActions(
      outcome.plan.actions,
      {
        paths,
        configDir: path.resolve(opts.configDir),
        backend: new ProcessBackend(opts.hostEnv ?? process.env),
        hostEnv: opts.hostEnv ?? process.env,
        now: Date.parse(outcome.plan.now),
        stopTimeoutMs: opts.stopTimeoutMs ?? 10_000,
        ...(opts.revision ? { revision: opts.revision } : {}),
      },
      ledger,
      hooks,
    );
    return { ...outcome, results };
  } finally {
    await lock.release();
  }
}

// Run one locked, ledgered operation on a live cell outside the plan (checkpoint, accept).
async function onLiveCell<T>(opts: EngineOptions, name: string, command: string, body: (cellDir: string, now: number, ledger: Ledger) => Promise<T>): Promise<T> {
  const paths = statePaths(opts.stateDir);
  await mkdir(path.dirname(paths.ledger), { recursive: true });
  const lock = await acquireLock(paths.lock, command);
  try {
    const cellDir = path.join(paths.cells, name);
    const rec = await readJson<CellRecord>(cellPaths(cellDir).record);
    if (!rec) throw new LazarusError("NO_SUCH_CELL", `no live cell named ${name} in ${paths.cells}; see lazarus status`);
    const { now } = await resolveNow(paths, opts.now);
    return await body(cellDir, now, new Ledger(paths.ledger, paths.ledgerHead));
  } finally {
    await lock.release();
  }
}

// `lazarus checkpoint NAME`: a checkpoint on demand.
export async function runCheckpoint(opts: EngineOptions, name: string): Promise<string> {
  return onLiveCell(opts, name, `lazarus checkpoint ${name}`, async (cellDir, now, ledger) => {
    const cp = cellPaths(cellDir);
    const rec = await readJson<CellRecord>(cp.record);
    if (!rec || (rec.state !== "active" && rec.state !== "downed")) {
      throw new LazarusError("NOT_ACTIVE", `cell ${name} is ${rec?.state}; only an active or downed cell can be checkpointed`);
    }
    const env = { paths: statePaths(opts.stateDir), configDir: path.resolve(opts.configDir), backend: new ProcessBackend(), hostEnv: process.env, now, stopTimeoutMs: opts.stopTimeoutMs ?? 10_000 };
    const archive = await checkpointCell(cp, rec, "on demand (lazarus checkpoint)", env);
    await ledger.append({ time: new Date(now).toISOString(), cell: name, action: "checkpoint", reason: "on demand (lazarus checkpoint)", details: { checkpoint: archive } });
    return archive;
  });
}

// `lazarus accept NAME IDENTITY --token T`.
export async function runAccept(opts: EngineOptions, name: string, identity: string, token: string): Promise<AcceptResult> {
  return onLiveCell(opts, name, `lazarus accept ${name}`, async (cellDir, now, ledger) => {
    const r = await accept(cellDir, identity, token, { now });
    await ledger.append({
      time: new Date(now).toISOString(),
      cell: name,
      action: r.status === "accepted" ? "accept" : "accept-refused",
      reason: r.status === "accepted" ? `${identity} accepted its invitation` : `${identity}: ${r.why}`,
    });
    return r;
  });
}

export type SavedApplyOutcome = { stale: string[]; results: ActionResult[]; revision: string };

// Apply a saved plan: exactly its actions, cell by cell, refusing cells whose observed state
// changed since it was made. A plan without actions touches nothing (not even the lock).
export async function applySaved(saved: SavedPlan, opts: Omit<EngineOptions, "configDir">, hooks: ApplyHooks = {}): Promise<SavedApplyOutcome> {
  if (saved.actions.length === 0) return { stale: [], results: [], revision: saved.revision };
  const paths = statePaths(opts.stateDir);
  const stateRoot = path.dirname(paths.ledger);
  await mkdir(stateRoot, { recursive: true });
  const lock = await acquireLock(paths.lock, "lazarus apply (saved plan)");
  try {
    const ledger = new Ledger(paths.ledger, paths.ledgerHead);
    const observed = await observeNames(paths, Object.keys(saved.fingerprints));
    const stale = staleCells(saved, observed);
    const { now } = await resolveNow(paths, saved.now);
    await recoverJournal(stateRoot, ledger, new Date(now).toISOString());
    const actions = saved.actions.filter((a) => !stale.includes(a.cell));
    const results = await applyActions(
      actions,
      {
        paths,
        configDir: saved.configDir,
        backend: new ProcessBackend(opts.hostEnv ?? process.env),
        hostEnv: opts.hostEnv ?? process.env,
        now,
        stopTimeoutMs: opts.stopTimeoutMs ?? 10_000,
        revision: saved.revision,
      },
      ledger,
      hooks,
    );
    return { stale, results, revision: saved.revision };
  } finally {
    await lock.release();
  }
}
