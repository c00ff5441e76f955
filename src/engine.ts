// One way through: load → observe → plan → apply. The CLI commands are thin shells around this.
// The read-only half (load, observe, plan) is compute.ts, re-exported here.
import { sweepBridges } from "./bridge/member.js";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { statePaths, cellPaths, type StatePaths } from "./cells/layout.js";
import { Ledger } from "./ledger/ledger.js";
import type { Lock } from "./lock/lock.js";
import { lockCell, tryLockCell, type TryCell } from "./lock/cell-lock.js";
import { StateLock } from "./lock/state-lock.js";
import { sweepTempFiles } from "./lock/sweep.js";
import { observeNames } from "./observe/observe.js";
import { fingerprint, staleCells, type SavedPlan } from "./plan/saved.js";
import {
  applyActions,
  recoverJournal,
  sweepStaging,
  type ActionResult,
  type ApplyHooks,
  type ApplyOptions,
  type CellClaim,
} from "./apply/apply.js";
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
import { APPLY_PUBLISH_BUDGET_MS, publishComments, type PublishOutcome } from "./forge/publish.js";

export {
  computePlan,
  credentialContext,
  observeAndPlan,
  resolveNow,
  resolveStateDir,
  type EngineOptions,
  type PlanOutcome,
} from "./compute.js";

export interface ApplyOutcome extends PlanOutcome {
  results: ActionResult[];
  published: PublishOutcome; // the forge comments worked after the actions (src/forge/)
}

export interface Locked {
  paths: StatePaths;
  ledger: Ledger; // each append holds the state-dir lock (briefly)
  state: StateLock;
}

export interface LockOptions {
  sweep?: boolean; // sweep the leftovers of killed writers (default true; the daemon does it once)
  backends?: Backends; // the caller's backends (default: the registry's, for this host)
  onThawed?(cells: string[]): void; // cells a killed checkpoint had left frozen, now thawed
  // A ledger time ahead of the clock (an earlier future --now) does not refuse the lock (the
  // daemon, which then holds its time rules); recovery is recorded at that time, never earlier.
  holdFutureLedger?: boolean;
}

// How long a ledger append waits for the state-dir lock: the work it records is done already.
const LEDGER_LOCK_WAIT_MS = 120_000;

function locked(opts: Pick<EngineOptions, "stateDir" | "lockTimeoutMs">, command: string): Locked {
  const paths = statePaths(opts.stateDir);
  const state = new StateLock(paths.lock, command, opts.lockTimeoutMs ?? 0);
  const ledger = new Ledger(paths.ledger, paths.ledgerHead, (fn) =>
    state.hold(fn, Math.max(state.timeoutMs, LEDGER_LOCK_WAIT_MS)),
  );
  return { paths, ledger, state };
}

// Under the state-dir lock, before any work: a run interrupted earlier is recorded (journal →
// ledger), its half-built leftovers are swept, a killed restore is finished and a killed
// checkpoint's freeze thawed. What a killed run left in a cell is dealt with only while that cell's
// lock is free: a cell whose lock a live process holds is that process's work in progress.
async function recover(
  opts: Pick<EngineOptions, "now" | "hostEnv" | "hostSettings">,
  l: Locked,
  command: string,
  lo: LockOptions,
): Promise<void> {
  const { paths, ledger } = l;
  const stateRoot = path.dirname(paths.ledger);
  const tryCell: TryCell = (cell) => tryLockCell(paths, cell, `${command} (recovering)`);
  const { now, heldUntil } = await resolveNow(paths, opts.now, lo.holdFutureLedger ? "hold" : "mutate");
  await recoverJournal(stateRoot, ledger, new Date(heldUntil ?? now).toISOString(), tryCell);
  if (lo.sweep !== false) {
    await sweepStaging(paths, tryCell);
    await sweepTempFiles(paths);
    await sweepBridges(stateRoot, paths.cells); // namespace files of incarnations no record names
  }
  const hostEnv = opts.hostEnv ?? process.env;
  const using = lo.backends ?? backends(stateRoot, hostEnv, opts.hostSettings ?? hostSettings(hostEnv));
  if (lo.sweep !== false) await finishRestores(paths, using, tryCell); // a killed restore: rolled forward once verified
  const thawed = await thawAbandoned(paths, using);
  if (thawed.length > 0) lo.onThawed?.(thawed);
}

type LockedOpts = Pick<EngineOptions, "stateDir" | "now" | "lockTimeoutMs" | "hostEnv" | "hostSettings">;

// The locks of a command, its state dir made if new.
async function enter(opts: LockedOpts, command: string): Promise<Locked> {
  const l = locked(opts, command);
  await mkdir(path.dirname(l.paths.ledger), { recursive: true });
  return l;
}

// Hold the state-dir lock around the recovery and body: for short bodies that change what all
// cells share and act on no cell (the GitOps decision, a session's start).
export async function withStateLock<T>(
  opts: LockedOpts,
  command: string,
  body: (l: Locked) => Promise<T>,
  lo: LockOptions = {},
): Promise<T> {
  const l = await enter(opts, command);
  return l.state.hold(async () => {
    await recover(opts, l, command, lo);
    return body(l);
  });
}

// The recovery under the state-dir lock, then body without it: body acts on cells under their own
// locks (lockCell, or applyActions' claim: cellClaims) and holds the state-dir lock only briefly
// (each ledger append), so one cell's long work never holds up another's (docs/state-layout.md).
export async function withCells<T>(
  opts: LockedOpts,
  command: string,
  body: (l: Locked) => Promise<T>,
  lo: LockOptions = {},
): Promise<T> {
  const l = await enter(opts, command);
  await l.state.hold(() => recover(opts, l, command, lo));
  return body(l);
}

// applyActions' claim: a cell's lock (waiting up to waitMs for another holder; past it the cell's
// actions are skipped, naming it), then a look at the cell: one that changed since it was planned
// (expected: its fingerprint then) is skipped too, for the next plan to see it as it is.
export function cellClaims(
  paths: StatePaths,
  command: string,
  waitMs: number,
  expected: (cell: string) => string | undefined,
  onRelease?: (cell: string) => void,
): (cell: string) => Promise<CellClaim> {
  return async (cell) => {
    let lock: Lock;
    try {
      lock = await lockCell(paths, cell, command, waitMs);
    } catch (err) {
      onRelease?.(cell);
      if (err instanceof LazarusError && err.code === "LOCKED") return { skip: err.message, busy: true };
      throw err;
    }
    const release = async () => {
      await lock.release();
      onRelease?.(cell);
    };
    const want = expected(cell);
    if (want !== undefined && fingerprint((await observeNames(paths, [cell])).cells.get(cell)) !== want) {
      await release();
      return {
        skip: `cell ${cell} changed since it was planned (another Lazarus acted on it meanwhile); the next plan sees it as it is`,
      };
    }
    return { release };
  };
}

// What apply operations need, from the engine options.
export function applyEnv(
  opts: Omit<EngineOptions, "configDir">,
  paths: StatePaths,
  configDir: string,
  now: number,
  revision = opts.revision,
  using?: Backends,
): ApplyEnv {
  const hostEnv = opts.hostEnv ?? process.env;
  const settings = opts.hostSettings ?? hostSettings(hostEnv);
  return {
    paths,
    configDir: path.resolve(configDir),
    backends: using ?? backends(path.dirname(paths.ledger), hostEnv, settings),
    hostEnv,
    host: settings,
    now,
    stopTimeoutMs: opts.stopTimeoutMs ?? 10_000,
    ...(revision ? { revision } : {}),
  };
}

function applyOptions(opts: Pick<EngineOptions, "parallelism">, claim: ApplyOptions["claim"]): ApplyOptions {
  return { ...(opts.parallelism !== undefined ? { parallelism: opts.parallelism } : {}), claim };
}

// Plan, let the caller confirm, apply: each cell's actions under that cell's lock (a cell another
// Lazarus is acting on, or that changed since planned, is skipped and says so). Returns undefined
// when not confirmed.
export async function runApply(
  opts: EngineOptions,
  hooks: ApplyHooks & { confirm?(outcome: PlanOutcome): Promise<boolean> } = {},
  command = "lazarus apply",
): Promise<ApplyOutcome | undefined> {
  return withCells(opts, command, async ({ paths, ledger, state }) => {
    const outcome = await computePlan(opts);
    if (outcome.plan.actions.length > 0 && hooks.confirm && !(await hooks.confirm(outcome))) return undefined;
    const claim = cellClaims(paths, command, opts.lockTimeoutMs ?? 0, (cell) =>
      fingerprint(outcome.observed.cells.get(cell)),
    );
    const results = await applyActions(
      outcome.plan.actions,
      { ...applyEnv(opts, paths, opts.configDir, Date.parse(outcome.plan.now)), stateLock: state },
      ledger,
      hooks,
      applyOptions(opts, claim),
    );
    const published = await publishAfter(opts, paths, ledger, Date.parse(outcome.plan.now), command);
    return { ...outcome, results, published };
  });
}

// The forge comments the cells now call for, after every action is done and recorded.
function publishAfter(
  opts: Omit<EngineOptions, "configDir">,
  paths: StatePaths,
  ledger: Ledger,
  now: number,
  command: string,
): Promise<PublishOutcome> {
  const hostEnv = opts.hostEnv ?? process.env;
  return publishComments({
    paths,
    ledger,
    hostEnv,
    host: opts.hostSettings ?? hostSettings(hostEnv),
    now,
    budgetMs: APPLY_PUBLISH_BUDGET_MS,
    command,
  });
}

// Run one ledgered operation on a live cell outside the plan (checkpoint, accept), holding the
// cell's lock (waiting up to the lock timeout for another holder), not the state dir's.
async function onLiveCell<T>(
  opts: EngineOptions,
  name: string,
  command: string,
  body: (cellDir: string, rec: CellRecord, now: number, l: Locked) => Promise<T>,
): Promise<T> {
  return withCells(opts, command, async (l) => {
    const lock = await lockCell(l.paths, name, command, opts.lockTimeoutMs ?? 0);
    try {
      const cellDir = path.join(l.paths.cells, name);
      const rec = await readUntrustedJson<CellRecord>(cellPaths(cellDir).record, CAPS.record, cellDir);
      if (!rec)
        throw new LazarusError("NO_SUCH_CELL", `no live cell named ${name} in ${l.paths.cells}; see lazarus status`);
      const { now } = await resolveNow(l.paths, opts.now);
      return await body(cellDir, rec, now, l);
    } finally {
      await lock.release();
    }
  });
}

// `lazarus checkpoint NAME`: a checkpoint on demand.
export async function runCheckpoint(opts: EngineOptions, name: string): Promise<string> {
  return onLiveCell(opts, name, `lazarus checkpoint ${name}`, async (cellDir, rec, now, { paths, ledger, state }) => {
    // checkpointing: an earlier checkpoint was interrupted; this one finishes the job
    if (rec.state !== "active" && rec.state !== "downed" && rec.state !== "checkpointing") {
      throw new LazarusError(
        "NOT_ACTIVE",
        `cell ${name} is ${rec.state}; only an active or downed cell can be checkpointed`,
      );
    }
    const reason = "on demand (lazarus checkpoint)";
    const time = new Date(now).toISOString();
    const archive = await checkpointCell(cellPaths(cellDir), rec, reason, {
      ...applyEnv(opts, paths, opts.configDir, now),
      stateLock: state,
    }).catch(async (err: unknown) => {
      await ledger.append({
        time,
        cell: name,
        action: "checkpoint-failed",
        reason,
        details: { error: errorMessage(err) },
      });
      throw err;
    });
    await ledger.append({ time, cell: name, action: "checkpoint", reason, details: { checkpoint: archive } });
    return archive;
  });
}

// `lazarus accept NAME IDENTITY --token T`.
export async function runAccept(
  opts: EngineOptions,
  name: string,
  identity: string,
  token: string,
): Promise<AcceptResult> {
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

export type SavedApplyOutcome = {
  stale: string[];
  results: ActionResult[];
  revision: string;
  published?: PublishOutcome;
};

// Apply a saved plan: exactly its actions, cell by cell, refusing cells whose observed state
// changed since it was made (checked again under each cell's lock). A plan without actions touches
// nothing (not even the lock).
// The plan's time decided what to do; the effects are stamped with the apply's own time
// (opts.now or the clock), so a plan applied hours later still gives a closed cell its grace.
export async function applySaved(
  saved: SavedPlan,
  opts: Omit<EngineOptions, "configDir">,
  hooks: ApplyHooks = {},
): Promise<SavedApplyOutcome> {
  if (saved.actions.length === 0) return { stale: [], results: [], revision: saved.revision };
  const command = "lazarus apply (saved plan)";
  return withCells(opts, command, async ({ paths, ledger, state }) => {
    const observed = await observeNames(paths, Object.keys(saved.fingerprints));
    const stale = staleCells(saved, observed);
    const { now } = await resolveNow(paths, opts.now);
    const actions = saved.actions.filter((a) => !stale.includes(a.cell));
    const claim = cellClaims(paths, command, opts.lockTimeoutMs ?? 0, (cell) => saved.fingerprints[cell]);
    const results = await applyActions(
      actions,
      { ...applyEnv(opts, paths, saved.configDir, now, saved.revision), stateLock: state },
      ledger,
      hooks,
      applyOptions(opts, claim),
    );
    const published = await publishAfter(opts, paths, ledger, now, command);
    return { stale, results, revision: saved.revision, published };
  });
}
