// One way through: load → observe → plan → apply. The CLI commands are thin shells around this.
// The read-only half (load, observe, plan) is compute.ts, re-exported here.
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { statePaths, cellPaths, type StatePaths } from "./cells/layout.js";
import { Ledger } from "./ledger/ledger.js";
import { acquireLock } from "./lock/lock.js";
import { sweepTempFiles } from "./lock/sweep.js";
import { observeNames } from "./observe/observe.js";
import { staleCells, type SavedPlan } from "./plan/saved.js";
import { applyActions, recoverJournal, sweepStaging, type ActionResult, type ApplyHooks, type ApplyOptions } from "./apply/apply.js";
import type { ApplyEnv } from "./apply/context.js";
import { backends, type Backends } from "./backends/registry.js";
import { hostSettings } from "./host/settings.js";
import { LazarusError, errorMessage } from "./util/errors.js";
import type { CellRecord } from "./cells/record.js";
import { CAPS, readUntrustedJson } from "./util/safe-fs.js";
import { checkpointCell } from "./apply/checkpoint.js";
import { thawAbandoned } from "./apply/freeze.js";
import { finishRestores } from "./apply/restore.js";
import { accept, type AcceptResult } from "./apply/members.js";
import { computePlan, resolveNow, type EngineOptions, type PlanOutcome } from "./compute.js";

export { computePlan, credentialContext, observeAndPlan, resolveNow, resolveStateDir, type EngineOptions, type PlanOutcome } from "./compute.js";

export interface ApplyOutcome extends PlanOutcome {
  results: ActionResult[];
}

export interface Locked {
  paths: StatePaths;
  ledger: Ledger;
}

export interface LockOptions {
  sweep?: boolean; // sweep the leftovers of killed writers (default true; the daemon does it once)
  backends?: Backends; // the caller's backends (default: the registry's, for this host)
  onThawed?(cells: string[]): void; // cells a killed checkpoint had left frozen, now thawed
}

// Hold the state-dir lock around body: the one way any command or the daemon changes state.
// Before body runs, a run interrupted earlier is recorded (journal → ledger), its half-built
// leftovers are swept, and a killed checkpoint's freeze is thawed.
export async function withStateLock<T>(opts: Pick<EngineOptions, "stateDir" | "now" | "lockTimeoutMs" | "hostEnv" | "hostSettings">, command: string, body: (l: Locked) => Promise<T>, lo: LockOptions = {}): Promise<T> {
  const paths = statePaths(opts.stateDir);
  const stateRoot = path.dirname(paths.ledger);
  await mkdir(stateRoot, { recursive: true });
  const lock = await acquireLock(paths.lock, command, { timeoutMs: opts.lockTimeoutMs ?? 0 });
  try {
    const ledger = new Ledger(paths.ledger, paths.ledgerHead);
    const { now } = await resolveNow(paths, opts.now);
    await recoverJournal(stateRoot, ledger, new Date(now).toISOString());
    if (lo.sweep !== false) {
      await sweepStaging(paths);
      await sweepTempFiles(paths);
    }
    const hostEnv = opts.hostEnv ?? process.env;
    const using = lo.backends ?? backends(stateRoot, hostEnv, opts.hostSettings ?? hostSettings(hostEnv));
    if (lo.sweep !== false) await finishRestores(paths, using); // a killed restore: rolled forward once verified
    const thawed = await thawAbandoned(paths, using);
    if (thawed.length > 0) lo.onThawed?.(thawed);
    return await body({ paths, ledger });
  } finally {
    await lock.release();
  }
}

// What apply operations need, from the engine options.
export function applyEnv(opts: Omit<EngineOptions, "configDir">, paths: StatePaths, configDir: string, now: number, revision = opts.revision, using?: Backends): ApplyEnv {
  const hostEnv = opts.hostEnv ?? process.env;
  const settings = opts.hostSettings ?? hostSettings(hostEnv);
  return { paths, configDir: path.resolve(configDir), backends: using ?? backends(path.dirname(paths.ledger), hostEnv, settings), hostEnv, host: settings, now, stopTimeoutMs: opts.stopTimeoutMs ?? 10_000, ...(revision ? { revision } : {}) };
}

function applyOptions(opts: Pick<EngineOptions, "parallelism">): ApplyOptions {
  return opts.parallelism !== undefined ? { parallelism: opts.parallelism } : {};
}

// Lock the state dir, plan, let the caller confirm, apply. Returns undefined when not confirmed.
export async function runApply(
  opts: EngineOptions,
  hooks: ApplyHooks & { confirm?(outcome: PlanOutcome): Promise<boolean> } = {},
  command = "lazarus apply",
): Promise<ApplyOutcome | undefined> {
  return withStateLock(opts, command, async ({ paths, ledger }) => {
    const outcome = await computePlan(opts);
    if (outcome.plan.actions.length > 0 && hooks.confirm && !(await hooks.confirm(outcome))) return undefined;
    const results = await applyActions(outcome.plan.actions, applyEnv(opts, paths, opts.configDir, Date.parse(outcome.plan.now)), ledger, hooks, applyOptions(opts));
    return { ...outcome, results };
  });
}

// Run one locked, ledgered operation on a live cell outside the plan (checkpoint, accept).
async function onLiveCell<T>(opts: EngineOptions, name: string, command: string, body: (cellDir: string, rec: CellRecord, now: number, l: Locked) => Promise<T>): Promise<T> {
  return withStateLock(opts, command, async (l) => {
    const cellDir = path.join(l.paths.cells, name);
    const rec = await readUntrustedJson<CellRecord>(cellPaths(cellDir).record, CAPS.record, cellDir);
    if (!rec) throw new LazarusError("NO_SUCH_CELL", `no live cell named ${name} in ${l.paths.cells}; see lazarus status`);
    const { now } = await resolveNow(l.paths, opts.now);
    return body(cellDir, rec, now, l);
  });
}

// `lazarus checkpoint NAME`: a checkpoint on demand.
export async function runCheckpoint(opts: EngineOptions, name: string): Promise<string> {
  return onLiveCell(opts, name, `lazarus checkpoint ${name}`, async (cellDir, rec, now, { paths, ledger }) => {
    // checkpointing: an earlier checkpoint was interrupted; this one finishes the job
    if (rec.state !== "active" && rec.state !== "downed" && rec.state !== "checkpointing") {
      throw new LazarusError("NOT_ACTIVE", `cell ${name} is ${rec.state}; only an active or downed cell can be checkpointed`);
    }
    const reason = "on demand (lazarus checkpoint)";
    const time = new Date(now).toISOString();
    const archive = await checkpointCell(cellPaths(cellDir), rec, reason, applyEnv(opts, paths, opts.configDir, now)).catch(async (err: unknown) => {
      await ledger.append({ time, cell: name, action: "checkpoint-failed", reason, details: { error: errorMessage(err) } });
      throw err;
    });
    await ledger.append({ time, cell: name, action: "checkpoint", reason, details: { checkpoint: archive } });
    return archive;
  });
}

// `lazarus accept NAME IDENTITY --token T`.
export async function runAccept(opts: EngineOptions, name: string, identity: string, token: string): Promise<AcceptResult> {
  return onLiveCell(opts, name, `lazarus accept ${name}`, async (cellDir, _rec, now, { ledger }) => {
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
// The plan's time decided what to do; the effects are stamped with the apply's own time
// (opts.now or the clock), so a plan applied hours later still gives a closed cell its grace.
export async function applySaved(saved: SavedPlan, opts: Omit<EngineOptions, "configDir">, hooks: ApplyHooks = {}): Promise<SavedApplyOutcome> {
  if (saved.actions.length === 0) return { stale: [], results: [], revision: saved.revision };
  return withStateLock(opts, "lazarus apply (saved plan)", async ({ paths, ledger }) => {
    const observed = await observeNames(paths, Object.keys(saved.fingerprints));
    const stale = staleCells(saved, observed);
    const { now } = await resolveNow(paths, opts.now);
    const actions = saved.actions.filter((a) => !stale.includes(a.cell));
    const results = await applyActions(actions, applyEnv(opts, paths, saved.configDir, now, saved.revision), ledger, hooks, applyOptions(opts));
    return { stale, results, revision: saved.revision };
  });
}
