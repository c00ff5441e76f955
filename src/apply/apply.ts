// apply: execute a plan's actions in order, journaled and recorded in the ledger.
// The engine never prints; it reports through hooks that the CLI renders.
import { keepEgressProxy } from "../egress/supervise.js";
import { keepGateway } from "../gateway/cells.js";
import { gatewayOf } from "./members.js";
import { readdir, rm } from "node:fs/promises";
import path from "node:path";
import type { StatePaths } from "../cells/layout.js";
import type { Action } from "../plan/actions.js";
import type { Ledger, LedgerInput } from "../ledger/ledger.js";
import { LazarusError, assertNever, errorMessage } from "../util/errors.js";
import { failpoint } from "../util/failpoint.js";
import { Journal } from "./journal.js";
import { PlanOrder } from "./plan-order.js";
import type { TryCell } from "../lock/cell-lock.js";
import { serialized } from "../util/serial.js";
import * as ops from "./ops.js";
import { replace } from "./replace.js"; // not through ops.js: replace uses ops' layout helpers
import { DEFAULT_PARALLELISM } from "./parallelism.js";
import { handleStall, recordProgress } from "../progress/handle.js";

export type ActionResult =
  | { status: "applied"; action: Action; details: ops.Details }
  | { status: "failed"; action: Action; error: string; code?: string } // code: the LazarusError's, if it was one
  | { status: "skipped"; action: Action; because: string };

export interface ApplyHooks {
  preApply?(action: Action): void;
  postApply?(result: ActionResult): void;
  // Asked before each action; false stops the run there (a daemon told to stop finishes the
  // action in progress and starts no other).
  shouldContinue?(): boolean;
}

function runAction(action: Action, env: ops.ApplyEnv): Promise<ops.Details> {
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
    case "replace":
      return replace(action, env);
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
    case "disk-full":
      return ops.diskFull(action, env);
    case "progress":
      return recordProgress(action, env);
    case "stall":
      return handleStall(action, env);
    case "checkpoint":
      return ops.checkpoint(action, env);
    default:
      return assertNever(action, "action");
  }
}

// Record each action a run died in (in a fixed order); its effects are finished by this run's plan.
// With tryCell, an entry is recorded only while its cell is held (one of a live run is left alone).
export async function recoverJournal(stateRoot: string, ledger: Ledger, now: string, tryCell?: TryCell): Promise<void> {
  const journal = new Journal(stateRoot);
  const found = await journal.leftovers();
  if (found.length === 0) return;
  const held: { release(): Promise<void> }[] = [];
  const left: typeof found = [];
  try {
    for (const l of found) {
      // The cell from the entry, or from its file's name (an entry being written is unreadable too).
      const cell =
        l.entry?.cell ??
        (l.file === journal.legacyFile ? undefined : decodeURIComponent(path.basename(l.file, ".json")));
      const hold = tryCell && cell ? await tryCell(cell) : { release: async () => {} };
      if (!hold) continue;
      held.push(hold);
      // Read again now that the cell is held: its worker may have finished meanwhile.
      const again = tryCell ? (await journal.leftovers()).find((x) => x.file === l.file) : l;
      if (again) left.push(again);
    }
    await recordLeftovers(journal, left, ledger, now);
  } finally {
    for (const h of held) await h.release();
  }
}

async function recordLeftovers(
  journal: Journal,
  left: Awaited<ReturnType<Journal["leftovers"]>>,
  ledger: Ledger,
  now: string,
): Promise<void> {
  if (left.length === 0) return;
  await ledger.appendMany(
    left.map(({ file, entry }) => ({
      time: now,
      cell: entry?.cell ?? "",
      action: "recover",
      reason: entry
        ? `a run (pid ${entry.pid}) stopped during ${entry.action} (${entry.reason}) started ${entry.startedAt}; converging from what is observed`
        : `a run stopped during an action whose journal ${path.basename(file)} is unreadable; converging from what is observed`,
    })),
  );
  for (const { file } of left) await journal.remove(file);
}

// Remove what an interrupted create or scrub left half-built (only Lazarus makes these names:
// .staging-<cell>-<id>, .tmp-<cell>-<uid>). With tryCell, only while that cell is held.
export async function sweepStaging(paths: StatePaths, tryCell?: TryCell): Promise<void> {
  const dirs = [paths.cells];
  for (const day of await readdir(paths.archive).catch(() => [] as string[])) dirs.push(path.join(paths.archive, day));
  for (const dir of dirs) {
    for (const e of await readdir(dir).catch(() => [] as string[])) {
      const cell = /^\.(?:staging|tmp)-(.+)-[^-]+$/.exec(e)?.[1];
      if (!e.startsWith(".staging-") && !e.startsWith(".tmp-")) continue;
      const hold = tryCell && cell ? await tryCell(cell) : { release: async () => {} };
      if (!hold) continue;
      try {
        await rm(path.join(dir, e), { recursive: true, force: true });
      } finally {
        await hold.release();
      }
    }
  }
}

export { DEFAULT_PARALLELISM } from "./parallelism.js";

export interface ApplyOptions {
  // How many cells are worked on at once (default DEFAULT_PARALLELISM; 1 applies strictly in order).
  parallelism?: number;
  // The time the ledger entries carry when it is later than env.now (the daemon while the ledger's
  // last time is ahead of the clock: entries never go back in time); each then notes the clock.
  ledgerTime?: number;
  // Hold a cell for its actions (its lock: src/lock/cell-lock.ts), before the first and until the
  // last is recorded; or say why the cell cannot be acted on now (its actions are skipped).
  claim?(cell: string): Promise<CellClaim>;
}

export type CellClaim = { release(): Promise<void> } | { skip: string; busy?: boolean };

type Slot = { result: ActionResult; journaled: boolean } | { result: undefined; journaled: false };

// What the workers and the committer of one applyActions call share.
interface Run {
  actions: Action[];
  env: ops.ApplyEnv;
  ledger: Ledger;
  hooks: ApplyHooks;
  opts: ApplyOptions;
  journal: Journal;
  now: string; // env.now, as journal entries carry it
  stamp: Stamp;
  order: PlanOrder<Slot>;
  sem: Semaphore;
  fatal?: { err: unknown }; // a journal or ledger write failed: start nothing more
  stopped: boolean; // shouldContinue said no
}

// The time ledger entries carry, and what each then notes of the clock.
interface Stamp {
  time: string;
  clock: { clock?: string };
}

// Apply actions: the actions of one cell one after another, in plan order; different cells
// concurrently, at most `parallelism` actions running at once. A failed action skips the rest of
// its cell; other cells go on.
//
// What stays as if applied one by one:
// - the ledger: entries are appended in plan order (a finished action waits for those before it),
//   in batches of whatever is finished, each batch one durable write;
// - the journal: each action's entry (journal.d/<cell>.json) is durable before its first effect
//   and removed only after its ledger entry is, so a killed run leaves exactly the actions whose
//   effects may be unrecorded, and the next run records them and converges;
// - one cell's next action starts only after its previous one is recorded.
// postApply is called in plan order. Actions that share the archive (scrub, purge) run one at a time.
export async function applyActions(
  actions: Action[],
  env: ops.ApplyEnv,
  ledger: Ledger,
  hooks: ApplyHooks = {},
  opts: ApplyOptions = {},
): Promise<ActionResult[]> {
  const limit = Math.max(1, Math.floor(opts.parallelism ?? DEFAULT_PARALLELISM));
  const journal = new Journal(path.dirname(env.paths.ledger));
  await keepEgressProxy(path.dirname(env.paths.ledger), env.hostEnv);
  await keepGateway(gatewayOf(env));
  const now = new Date(env.now).toISOString();
  const run: Run = {
    actions,
    env,
    ledger,
    hooks,
    opts,
    journal,
    now,
    stamp: ledgerStamp(env, now, opts.ledgerTime),
    order: new PlanOrder<Slot>(actions.length),
    sem: semaphore(limit),
    stopped: false,
  };
  const workers = cellsInOrder(actions).map((indices) =>
    runCell(run, indices).catch((err: unknown) => {
      run.fatal ??= { err };
      for (const j of indices) if (!run.order.slots[j]) run.order.settle(j, { result: undefined, journaled: false });
    }),
  );
  const results: ActionResult[] = [];
  try {
    await commitInOrder(run, results);
  } catch (err) {
    run.fatal ??= { err };
  }
  // After a failed ledger write: let every worker finish (in-flight actions complete; the rest
  // are not started). An action finished but not recorded keeps its journal entry, so the next
  // run records the interruption.
  run.order.commitAll(); // unblock cells waiting on a record that will not come
  await Promise.all(workers);
  if (run.fatal) throw run.fatal.err;
  return results;
}

// The time the ledger entries carry: env.now, or ledgerTime when it is later (each entry then
// notes the clock).
function ledgerStamp(env: ops.ApplyEnv, now: string, ledgerTime: number | undefined): Stamp {
  return ledgerTime !== undefined && ledgerTime > env.now
    ? { time: new Date(ledgerTime).toISOString(), clock: { clock: now } }
    : { time: now, clock: {} };
}

// The indices of each cell's actions in plan order; cells in order of their first action.
function cellsInOrder(actions: Action[]): number[][] {
  const byCell = new Map<string, number[]>();
  actions.forEach((a, i) => {
    const list = byCell.get(a.cell);
    if (list) list.push(i);
    else byCell.set(a.cell, [i]);
  });
  return [...byCell.values()];
}

// One cell's actions, in order, holding the cell (when a claim is asked for) throughout.
async function runCell(run: Run, indices: number[]): Promise<void> {
  const { actions, opts, order } = run;
  const claim = opts.claim ? await opts.claim((actions[indices[0] as number] as Action).cell) : undefined;
  if (claim && "skip" in claim) {
    for (const i of indices)
      order.settle(i, {
        result: { status: "skipped", action: actions[i] as Action, because: claim.skip },
        journaled: false,
      });
    return;
  }
  try {
    await runCellClaimed(run, indices);
    await order.committed[indices[indices.length - 1] as number];
  } finally {
    await claim?.release();
  }
}

// A held cell's actions: each starts once the one before is recorded; after a failure that stops
// the cell, the rest are skipped.
async function runCellClaimed(run: Run, indices: number[]): Promise<void> {
  let failedBefore: string | undefined;
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k] as number;
    const action = run.actions[i] as Action;
    if (k > 0) await run.order.committed[indices[k - 1] as number];
    if (failedBefore) {
      run.order.settle(i, {
        result: { status: "skipped", action, because: `an earlier action on ${action.cell} failed: ${failedBefore}` },
        journaled: false,
      });
      continue;
    }
    const step = await runStep(run, indices, k);
    if (step === "stop") return;
    if (step.stopsCell !== undefined) failedBefore = step.stopsCell;
  }
}

// Action indices[k] of a held cell, within a slot of the semaphore: journaled, run, settled.
// "stop": the run starts nothing more (this action and the cell's later ones are settled as not
// run); else the error of a failure that stops the cell, if it was one.
async function runStep(run: Run, indices: number[], k: number): Promise<"stop" | { stopsCell?: string }> {
  const { hooks, order } = run;
  const i = indices[k] as number;
  const action = run.actions[i] as Action;
  await run.sem.acquire();
  try {
    if (run.fatal || run.stopped || (hooks.shouldContinue && !hooks.shouldContinue())) {
      run.stopped = true;
      for (const j of indices.slice(k)) order.settle(j, { result: undefined, journaled: false });
      return "stop";
    }
    hooks.preApply?.(action);
    try {
      await run.journal.begin({
        cell: action.cell,
        action: action.kind,
        reason: action.reason,
        pid: process.pid,
        startedAt: run.now,
      });
    } catch (err) {
      run.fatal ??= { err };
      for (const j of indices.slice(k)) order.settle(j, { result: undefined, journaled: false });
      return "stop";
    }
    const { result, stopsCell } = await execute(action, run.env);
    order.settle(i, { result, journaled: true });
    return stopsCell !== undefined ? { stopsCell } : {};
  } finally {
    run.sem.release();
  }
}

// One action's effects (those sharing the archive one at a time, under the state-dir lock): its
// result, and the error when its failure stops its cell.
async function execute(action: Action, env: ops.ApplyEnv): Promise<{ result: ActionResult; stopsCell?: string }> {
  try {
    // The archive is shared by every cell: its actions also hold the state-dir lock (other processes).
    const shared = () => (env.stateLock ? env.stateLock.hold(() => runAction(action, env)) : runAction(action, env));
    const details = await (EXCLUSIVE.has(action.kind)
      ? serialized(`apply:archive:${env.paths.archive}`, shared)
      : runAction(action, env));
    failpoint(`applied:${action.kind}`);
    return { result: { status: "applied", action, details } };
  } catch (err) {
    const error = errorMessage(err);
    const result: ActionResult = {
      status: "failed",
      action,
      error,
      ...(err instanceof LazarusError ? { code: err.code } : {}),
    };
    return ops.failureStopsCell(action, err) ? { result, stopsCell: error } : { result };
  }
}

// The committer: ledger entries in plan order, a batch of whatever is finished at a time (up to
// 256, one durable write), then the batch's journal entries removed, postApply called and each
// action marked committed.
async function commitInOrder(run: Run, results: ActionResult[]): Promise<void> {
  const { order, hooks } = run;
  const n = run.actions.length;
  let i = 0;
  while (i < n) {
    await order.ready[i];
    let end = i + 1;
    while (end < n && end - i < 256 && order.slots[end] !== undefined) end++;
    const batch = order.slots.slice(i, end) as Slot[];
    const inputs = batch.flatMap((s) => {
      const e = s.result ? entryOf(s.result, run.stamp, run.env.revision) : undefined;
      return e ? [e] : [];
    });
    await run.ledger.appendMany(inputs);
    await Promise.all(batch.map((s) => (s.journaled && s.result ? run.journal.end(s.result.action.cell) : undefined)));
    for (let j = i; j < end; j++) {
      const r = (order.slots[j] as Slot).result; // undefined: not run (stopped), as if not planned
      if (r) {
        results.push(r);
        hooks.postApply?.(r);
      }
      order.commit(j);
    }
    i = end;
  }
}

// An action's ledger entry (a failure as <kind>-failed); a skipped action is not recorded.
function entryOf(r: ActionResult, stamp: Stamp, revision: string | undefined): LedgerInput | undefined {
  const rev = revision ? { revision } : {};
  if (r.status === "applied")
    return {
      time: stamp.time,
      cell: r.action.cell,
      action: r.action.kind,
      reason: r.action.reason,
      details: { ...r.details, ...stamp.clock },
      ...rev,
    };
  if (r.status === "failed")
    return {
      time: stamp.time,
      cell: r.action.cell,
      action: `${r.action.kind}-failed`,
      reason: r.action.reason,
      details: { error: r.error, ...stamp.clock },
      ...rev,
    };
  return undefined; // skipped: not recorded, as before
}

// Actions that share the archive directory (a day folder one creates another may delete).
const EXCLUSIVE = new Set<Action["kind"]>(["scrub", "purge"]);

type Semaphore = { acquire(): Promise<void>; release(): void };

// A counting semaphore, first come first served.
function semaphore(limit: number): Semaphore {
  let free = limit;
  const queue: (() => void)[] = [];
  return {
    acquire() {
      if (free > 0) {
        free--;
        return Promise.resolve();
      }
      return new Promise<void>((r) => queue.push(r));
    },
    release() {
      const next = queue.shift();
      if (next) next();
      else free++;
    },
  };
}
