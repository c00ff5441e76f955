// The daemon's reconcile step: observe → plan → apply for a set of cells (level-triggered: it
// reads the world afresh, whatever event named them), and for each cell an Outcome saying when
// it wants to run again (outcome.ts). The queue decides nothing about time; this step does not
// touch the queue beyond freeing a cell as soon as its actions are done.
import { applyActions, type ActionResult } from "../apply/apply.js";
import { publishComments, publishLine } from "../forge/publish.js";
import { hostSettings, type HostSettings } from "../host/settings.js";
import { pollEveryMs } from "../backends/liveness.js";
import type { DesiredCell } from "../config/types.js";
import { formatDiagnostic } from "../config/diagnostics.js";
import { applyEnv, cellClaims, observeAndPlan, resolveNow, type Locked } from "../engine.js";
import type { Ledger } from "../ledger/ledger.js";
import { observeNames, type Observed, type ObservedCell, type ObservedName } from "../observe/observe.js";
import { SUPERVISION, type Action } from "../plan/actions.js";
import { fingerprint } from "../plan/saved.js";
import { errorMessage } from "../util/errors.js";
import type { DaemonContext } from "./context.js";
import { diskPrint, fingerprintOf, listing, unchanged, type Fingerprint, type Listing } from "./fingerprint.js";
import type { ReconcileResult } from "./metrics.js";
import { errorKind, failureKind, type FailureKind, type Outcome } from "./outcome.js";
import { BUSY } from "./state-lock.js";
import { MemberPids } from "./sources/exits.js";
import { nextWake, nextWakeAfter } from "./wake.js";

// A live cell judged for progress: when it last showed progress (or its clock started), and its
// running executors (for lazarus_member_seconds_since_progress).
function lastProgress(live: ObservedCell | undefined): { since: number; members: string[] } | undefined {
  const s = live?.record?.progress ? live.progress?.state : undefined;
  if (!live || !s) return undefined;
  const members = live.members
    .filter((m) => (m.role === "executor" || m.role === "substitute") && m.alive && m.status === "running")
    .map((m) => m.identity);
  return { since: Date.parse(s.lastEvidenceAt ?? s.since), members };
}

// A cell is never woken sooner than this after a reconcile (no busy loop on a rule due now).
const MIN_REQUEUE_MS = 1_000;

export interface BatchReport {
  result: ReconcileResult; // for lazarus_reconciles_total
  outcomes: Map<string, Outcome>; // one per cell of the batch
}

// What one batch's apply said of its cells.
interface Applied {
  failures: Map<string, { kind: FailureKind; error: string }>; // a cell's failed actions, the retryable first
  flagged: Set<string>; // cells with an action that failed or was skipped
  acted: Set<string>; // cells with an action applied
  skipped: Set<string>; // cells whose lock another process held
}

export class CellReconciler {
  // What each cell looked like when last observed, and the config it was planned against: a
  // resync skips the cells where neither changed (src/daemon/fingerprint.ts).
  private readonly prints = new Map<string, { fp: Fingerprint; config: object }>();
  private readonly states = new Map<string, string>(); // each cell's state as last seen
  readonly pids = new MemberPids(); // the members last seen running, for the tick
  private heldUntil: number | undefined; // the ledger's last time, while it is ahead of the clock

  constructor(private readonly ctx: DaemonContext) {}

  // How many cells the daemon knows, and which.
  get known(): number {
    return this.states.size;
  }

  knownNames(): string[] {
    return [...this.states.keys()];
  }

  // Observe every cell afresh at the next pass, changed or not (start, SIGHUP).
  forgetPrints(): void {
    this.prints.clear();
  }

  // Reconcile these cells: the recovery, observe and plan as withCells does them, each cell's
  // actions under its own lock. scope: the metric label of the batch's duration (undefined: a chunk
  // of a full pass, timed as a whole).
  async reconcile(names: Set<string>, scope: "cells" | undefined): Promise<BatchReport> {
    const { metrics, log } = this.ctx;
    const end = scope ? metrics.reconcileSeconds.startTimer({ scope }) : () => 0;
    const outcomes = new Map<string, Outcome>();
    try {
      const flagged = await this.ctx.lock.run((l) => this.reconcileLocked(l, names, outcomes), true);
      if (flagged === BUSY) {
        for (const n of names) outcomes.set(n, { kind: "busy" });
        return { result: "busy", outcomes };
      }
      for (const cell of flagged) metrics.cellErrors.inc({ cell });
      if (flagged.size > 0) return { result: "error", outcomes };
      metrics.lastSuccess.set(Date.now() / 1000);
      return { result: "success", outcomes };
    } catch (err) {
      metrics.errors.inc({ kind: "reconcile" });
      log.error({ err: errorMessage(err) }, "reconcile failed");
      const kind = errorKind(err);
      for (const n of names) outcomes.set(n, { kind, error: errorMessage(err) });
      return { result: "error", outcomes };
    } finally {
      end();
    }
  }

  // Whether the cell can be left out of a resync: observed before against this same config, no wake
  // due, and nothing on disk or in the process table changed since.
  unchangedSince(name: string, config: object, seen: Listing, now: number, dueAt: number | undefined): boolean {
    const p = this.prints.get(name);
    if (!p || p.config !== config) return false;
    if (dueAt !== undefined && dueAt <= now) return false;
    return unchanged(p.fp, diskPrint(this.ctx.paths, name, seen));
  }

  // The daemon no longer knows the cell: its state, pids, print and counters go.
  forget(name: string): void {
    this.prints.delete(name);
    this.setState(name, undefined);
    this.pids.delete(name);
    this.ctx.metrics.forgetCell(name);
  }

  // observe → plan → apply for these cells, each cell's actions under its lock (taken at once or
  // not: a cell another process holds is skipped and queued again shortly). A cell is out of
  // the daemon's work as soon as its actions are done, so the next event for it is not held up by
  // the other cells of the batch. While the ledger's time is ahead of the clock, only the
  // supervision actions are applied (SUPERVISION), at the clock, their ledger entries stamped no
  // earlier than that time; the cells whose other actions wait are woken when the clock passes it.
  // Returns the cells with an action that failed or was skipped.
  private async reconcileLocked(l: Locked, names: Set<string>, outcomes: Map<string, Outcome>): Promise<Set<string>> {
    const { paths, log, queue } = this.ctx;
    const config = this.ctx.config.cache.current();
    const { desired } = config;
    const { now, heldUntil } = await resolveNow(paths, undefined, "hold");
    await this.noteClock(l.ledger, now, heldUntil);
    // Disk prints before the observation they stand for (see fingerprint.ts).
    const disks = await this.diskPrints(names);
    const { observed, plan: p } = await observeAndPlan(paths, desired, now, names);
    for (const h of p.held) log.warn({ cell: h.cell, file: h.file }, "cell held: its file is quarantined");
    for (const d of p.diagnostics)
      log[d.severity === "error" ? "error" : "warn"]({ file: d.file, line: d.line }, formatDiagnostic(d));
    const actions = heldUntil === undefined ? p.actions : p.actions.filter((a) => SUPERVISION.has(a.kind));
    const waiting = new Set(p.actions.filter((a) => !actions.includes(a)).map((a) => a.cell));
    if (waiting.size > 0)
      log.debug(
        { cells: [...waiting], until: new Date(heldUntil as number).toISOString() },
        "actions wait for the clock",
      );
    const acting = new Set(actions.map((a) => a.cell));
    for (const n of names) if (!acting.has(n)) queue.release(n);
    const { results, applied } = await this.apply(l, actions, observed, now, heldUntil);
    const touched = new Set(p.actions.map((a) => a.cell));
    // A cell that failed for good with nothing applied: its print is taken after the failure, so a
    // resync leaves it alone until something it reads changes (it would fail the same way).
    const stuck = [...applied.failures]
      .filter(([c, f]) => f.kind === "terminal" && !applied.acted.has(c))
      .map(([c]) => c);
    const stuckDisks = await this.diskPrints(stuck);
    const after =
      results.length > 0 ? await observeNames(paths, [...touched]) : { cells: new Map<string, ObservedName>() };
    for (const name of names) {
      const o = after.cells.get(name) ?? observed.cells.get(name);
      outcomes.set(
        name,
        this.outcome(name, o, desired.cells.get(name), now, applied, waiting.has(name) ? heldUntil : undefined),
      );
      // A fingerprint stands for an observation whose plan was empty (or failed for good): a cell
      // acted on is observed again at the next resync, then left alone while it holds still.
      const fp = stuckDisks.has(name)
        ? fingerprintOf(stuckDisks.get(name), o)
        : touched.has(name)
          ? undefined
          : fingerprintOf(disks.get(name), observed.cells.get(name));
      if (fp && this.states.has(name)) this.prints.set(name, { fp, config });
      else this.prints.delete(name);
    }
    return applied.flagged;
  }

  // Apply the actions, each cell's under its lock; what happened to each cell.
  private async apply(
    l: Locked,
    actions: Action[],
    observed: Observed,
    now: number,
    heldUntil: number | undefined,
  ): Promise<{ results: ActionResult[]; applied: Applied }> {
    const { paths, opts, log, metrics, queue } = this.ctx;
    const applied: Applied = { failures: new Map(), flagged: new Set(), acted: new Set(), skipped: new Set() };
    const claims = cellClaims(
      paths,
      "lazarus watch",
      0,
      (cell) => fingerprint(observed.cells.get(cell)),
      (cell) => queue.release(cell),
    );
    const claim: typeof claims = async (cell) => {
      const c = await claims(cell);
      if ("skip" in c) applied.skipped.add(cell);
      return c;
    };
    const env = applyEnv(
      { stopTimeoutMs: opts.stopTimeoutMs, ...(opts.hostSettings ? { hostSettings: opts.hostSettings } : {}) },
      paths,
      this.ctx.config.dir,
      now,
      this.ctx.config.revision,
      this.ctx.backends,
    );
    const postApply = (r: ActionResult): void => {
      const cell = r.action.cell;
      metrics.actions.inc({ action: r.action.kind, status: r.status });
      if (r.status === "applied" && r.action.kind === "stall") metrics.stalls.inc({ cell, outcome: r.action.onStall });
      if (r.status === "applied") {
        applied.acted.add(cell);
        log.info({ cell, action: r.action.kind, reason: r.action.reason }, "applied");
        return;
      }
      applied.flagged.add(cell);
      metrics.errors.inc({ kind: "action" });
      log.error(
        { cell, action: r.action.kind, reason: r.action.reason, err: r.status === "failed" ? r.error : r.because },
        r.status === "failed" ? "action failed" : "action skipped",
      );
      if (r.status !== "failed") return;
      const kind = failureKind(r.code);
      if (applied.failures.get(cell)?.kind !== "transient") applied.failures.set(cell, { kind, error: r.error });
    };
    const results = await applyActions(
      actions,
      { ...env, stateLock: l.state },
      l.ledger,
      { shouldContinue: () => !this.ctx.stopping(), postApply },
      {
        ...(opts.parallelism !== undefined ? { parallelism: opts.parallelism } : {}),
        ...(heldUntil !== undefined ? { ledgerTime: heldUntil } : {}),
        claim,
      },
    );
    this.publish(l, env, Math.max(now, heldUntil ?? 0));
    return { results, applied };
  }

  // The forge comments, worked in the background (one pass; what waits is retried at the next
  // reconcile): a slow or refusing forge never holds up a reconcile.
  private publishing: Promise<unknown> | undefined;
  private publish(l: Locked, env: { hostEnv: NodeJS.ProcessEnv; host?: HostSettings }, now: number): void {
    if (this.publishing) return;
    this.publishing = publishComments({
      paths: this.ctx.paths,
      ledger: l.ledger,
      hostEnv: env.hostEnv,
      host: env.host ?? hostSettings(env.hostEnv),
      now,
      budgetMs: 0,
      command: "lazarus watch",
    })
      .then((r) => {
        if (r.status === "worked" && r.pushes) this.ctx.metrics.countPushes(r.pushes);
        const line = publishLine(r);
        if (line) this.ctx.log.info({ publish: r.status }, line);
      })
      .finally(() => (this.publishing = undefined));
  }

  // Keep what the tick and the metrics need of the cell (its state, its running members), and say
  // when it wants to run again: its next time rule, sooner for a backend polled for exits; a
  // failure's kind; busy when another process held it; gone when nothing of it remains.
  private outcome(
    name: string,
    o: ObservedName | undefined,
    d: DesiredCell | undefined,
    now: number,
    applied: Applied,
    heldUntil: number | undefined,
  ): Outcome {
    const live = o?.live?.record;
    const state = live?.state ?? o?.graveyard?.record?.state ?? (o && o.archives.length > 0 ? "archived" : undefined);
    if (!state && !d) {
      this.forget(name);
      return { kind: "gone" };
    }
    this.setState(name, state);
    this.ctx.metrics.setProgress(name, lastProgress(o?.live));
    const backend = live?.backend ?? o?.graveyard?.record?.backend;
    const pollMs = backend === undefined ? undefined : pollEveryMs(backend);
    const running = (o?.live?.members ?? [])
      .filter((m) => m.status === "running" && m.pid)
      .map((m) => ({ pid: m.pid as number, ...(m.startTime ? { startTime: m.startTime } : {}) }));
    this.pids.set(name, pollMs === undefined ? running : []); // a polled backend's pids are another host's
    if (applied.skipped.has(name)) return { kind: "busy" };
    const failure =
      applied.failures.get(name) ??
      (applied.flagged.has(name) ? { kind: "transient" as const, error: "an action was skipped" } : undefined);
    const clock = Date.now();
    let wake = failure ? nextWakeAfter(d, o, now) : nextWake(d, o, now);
    if (heldUntil !== undefined && !failure) wake = heldUntil; // its other actions wait for the clock
    if (pollMs !== undefined) wake = Math.min(wake ?? Number.POSITIVE_INFINITY, clock + pollMs);
    const after = wake === undefined ? {} : { requeueAfter: Math.max(wake - clock, MIN_REQUEUE_MS) };
    return failure ? { kind: failure.kind, error: failure.error, ...after } : { kind: "done", ...after };
  }

  // Whether the ledger's last time is ahead of the clock (heldUntil): said once when it starts (log,
  // ledger event, metric) and once when the clock passes it.
  private async noteClock(ledger: Ledger, now: number, heldUntil: number | undefined): Promise<void> {
    if (heldUntil === this.heldUntil) return;
    const { log, metrics } = this.ctx;
    const was = this.heldUntil;
    this.heldUntil = heldUntil;
    metrics.timeRulesHeld.set(heldUntil === undefined ? 0 : heldUntil / 1000);
    if (heldUntil === undefined) {
      log.info(
        { until: new Date(was as number).toISOString() },
        "the clock passed the ledger's last recorded time: time rules apply again",
      );
      return;
    }
    const until = new Date(heldUntil).toISOString();
    const clock = new Date(now).toISOString();
    const reason = `the ledger's last recorded time ${until} is ahead of the clock ${clock} (an earlier command ran with a future --now): members are still supervised (down, restart), but no time rule (ttl, grace, retention, invitation and downed timeouts, checkpoint schedule) nor create, update or close is acted on until the clock passes ${until}`;
    log.warn({ until, clock }, reason);
    await ledger.append({ time: until, cell: "", action: "time-rules-held", reason, details: { until, clock } });
  }

  private async diskPrints(names: Iterable<string>): Promise<Map<string, string | undefined>> {
    const list = [...names];
    const out = new Map<string, string | undefined>();
    if (list.length === 0) return out;
    const seen = await listing(this.ctx.paths);
    for (const n of list) out.set(n, diskPrint(this.ctx.paths, n, seen));
    return out;
  }

  // A cell's state as the daemon knows it, and its gauge with it (one cell's work, not every cell's).
  private setState(name: string, state: string | undefined): void {
    if (state) this.states.set(name, state);
    else this.states.delete(name);
    this.ctx.metrics.setCellState(name, state);
  }
}
