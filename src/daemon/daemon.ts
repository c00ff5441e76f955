// lazarus watch: a long-running reconciler. File events, the clock and process exits only enqueue
// cell names; one worker reconciles what is queued (level-triggered: it reads the world afresh).
import { mkdir } from "node:fs/promises";
import type http from "node:http";
import path from "node:path";
import { watch, type FSWatcher } from "chokidar";
import cron, { type ScheduledTask } from "node-cron";
import { statePaths, type StatePaths } from "../cells/layout.js";
import { formatDiagnostic } from "../config/diagnostics.js";
import { loadConfig } from "../config/load.js";
import type { Budget } from "../gitops/budget.js";
import { approvedRevision, judgeRevision, recordInForce } from "../gitops/decide.js";
import { readGitopsStatus } from "../gitops/status.js";
import { checkoutRevision, revisionDir } from "../gitops/sync.js";
import { applyEnv, cellClaims, credentialContext, observeAndPlan, resolveNow, withCells, withStateLock, type Locked } from "../engine.js";
import { fingerprint } from "../plan/saved.js";
import { credentialDigestKey } from "../host/digest-key.js";
import type { CredentialContext } from "../host/secrets.js";
import { hostSettings, type HostSettings } from "../host/settings.js";
import { Ledger } from "../ledger/ledger.js";
import type { Lock } from "../lock/lock.js";
import { isAlive } from "../host/proc.js";
import { listNames, observeNames, type Observed, type ObservedName } from "../observe/observe.js";
import { diskPrint, fingerprintOf, listing, unchanged, type Fingerprint, type Listing } from "./fingerprint.js";
import { applyActions } from "../apply/apply.js";
import { SUPERVISION } from "../plan/actions.js";
import { backends, findBackend, type Backends } from "../backends/registry.js";

import { LazarusError, errorMessage } from "../util/errors.js";
import { pausepoint } from "../util/failpoint.js";
import { claimDaemon } from "./presence.js";
import { ConfigCache } from "./config-cache.js";
import type { Logger } from "./log.js";
import { eventsFile } from "../egress/state.js";
import { Metrics, type ReconcileResult } from "./metrics.js";
import { nextWake } from "./wake.js";

export interface RepoOptions {
  url: string;
  ref: string;
  subdir?: string;
  intervalMs: number;
  budget: Budget;
}

export interface DaemonOptions {
  configDir: string;
  repo?: RepoOptions; // GitOps: follow this repo's ref instead of (or besides) a local directory
  stateDir?: string;
  debounceMs: number;
  resyncMs: number;
  tick: string; // node-cron expression for the time rules and liveness checks
  stopTimeoutMs: number;
  metricsPort?: number;
  metricsHost: string;
  log: Logger;
  hostSettings?: HostSettings; // where credentials may come from (--secrets-dir, LAZARUS_*)
  parallelism?: number; // cells applied at once in a reconcile (default DEFAULT_PARALLELISM)
  lockTimeoutMs?: number; // how long each reconcile waits for another holder of the state-dir lock (default 5s)
}

type Batch = { all: true } | { all: false; names: Set<string> };

const FULL_CHUNK = 250;
// Every this many resyncs observe every cell, changed or not (a net under the fingerprints).
const DEEP_EVERY = 12;
const RETRY_MS = 30_000;
// How often a remote cell is observed again (its members' exits are not seen from here).
const REMOTE_POLL_MS = 15_000;
const LOCK_RETRY_MS = 1_000; // the state dir (or a cell) was busy: look again this soon
const MAX_WORKERS = 8; // reconciles at once (each of other cells)
const BUSY = Symbol("state dir busy");

export class Daemon {
  private readonly paths: StatePaths;
  private cache: ConfigCache;
  private configDir: string;
  private revision: string | undefined; // the commit in force (repo mode)
  private pollTimer: NodeJS.Timeout | undefined;
  private readonly metrics = new Metrics();
  private readonly ledger: Ledger;
  private readonly backends: Backends;
  private presence: Lock | undefined; // <state>/watch.pid, held from start to stop
  private recovered = false; // the start-up sweep ran (under the lock)
  private retryTimer: NodeJS.Timeout | undefined;
  private retryAll = false;
  private readonly retryNames = new Set<string>();
  private watcher: FSWatcher | undefined;
  private ticker: ScheduledTask | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private server: http.Server | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private readonly changedFiles = new Set<string>();
  private readonly queued = new Set<string>();
  private queuedAll = false;
  private readonly workers = new Set<Promise<void>>();
  private readonly inflight = new Set<string>(); // cells a reconcile is at work on
  private fullRunning = false;
  private stopping = false;
  private ready = false;
  // What the daemon last saw of each cell: its state, its member pids, when it next needs a look.
  private readonly states = new Map<string, string>();
  private readonly pids = new Map<string, { pid: number; startTime?: number }[]>();
  private readonly wakes = new Map<string, number>();
  // What each cell looked like when last observed, and the config it was planned against: a
  // resync skips the cells where neither changed (src/daemon/fingerprint.ts).
  private readonly prints = new Map<string, { fp: Fingerprint; config: object }>();
  private resyncs = 0;
  private heldUntil: number | undefined; // the ledger's last time, while it is ahead of the clock

  constructor(private readonly opts: DaemonOptions) {
    this.paths = statePaths(opts.stateDir);
    this.configDir = opts.configDir;
    this.cache = new ConfigCache(opts.configDir, () => this.credentials());
    this.ledger = new Ledger(this.paths.ledger, this.paths.ledgerHead);
    this.metrics.watchEgress(eventsFile(path.dirname(this.paths.ledger)));
    this.backends = backends(path.dirname(this.paths.ledger), process.env, opts.hostSettings ?? hostSettings(process.env), (spec, pid) => {
      this.opts.log.info({ cell: spec.cell, member: spec.identity, pid }, "member process exited");
      this.enqueue([spec.cell]);
    });
  }

  // The operator's credential sources and the state dir's digest key, read afresh each time.
  private credentials(): Promise<CredentialContext> {
    return credentialContext({ ...(this.opts.hostSettings ? { hostSettings: this.opts.hostSettings } : {}) }, this.paths);
  }

  // Run body holding the state-dir lock, waiting at most lockTimeoutMs for a command that holds it;
  // BUSY when it could not be taken (the caller tries again later). A run interrupted earlier is
  // recorded (journal → ledger) first, and at the first hold the leftovers of killed writers are swept.
  private async underLock<T>(body: (l: Locked) => Promise<T>, cells = false): Promise<T | typeof BUSY> {
    try {
      return await (cells ? withCells : withStateLock)(
        { ...(this.opts.stateDir ? { stateDir: this.opts.stateDir } : {}), lockTimeoutMs: this.opts.lockTimeoutMs ?? 5_000, ...(this.opts.hostSettings ? { hostSettings: this.opts.hostSettings } : {}) },
        "lazarus watch",
        async (l) => {
          this.recovered = true;
          return body(l);
        },
        { sweep: !this.recovered, backends: this.backends, holdFutureLedger: true, onThawed: (cells) => this.log.warn({ cells }, "thawed cells a killed checkpoint left frozen") },
      );
    } catch (err) {
      if (!(err instanceof LazarusError) || err.code !== "LOCKED") throw err;
      this.metrics.errors.inc({ kind: "locked" });
      this.log.warn({ err: errorMessage(err) }, "state dir busy: trying again shortly");
      return BUSY;
    }
  }

  // Queue names (or everything) again after LOCK_RETRY_MS, because the state dir was busy.
  private retryLater(names: Iterable<string> | "all"): void {
    if (names === "all") this.retryAll = true;
    else for (const n of names) this.retryNames.add(n);
    if (this.retryTimer || this.stopping) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      const all = this.retryAll;
      const again = [...this.retryNames];
      this.retryAll = false;
      this.retryNames.clear();
      if (all) this.enqueueAll("state dir was busy");
      else this.enqueue(again);
    }, LOCK_RETRY_MS);
  }

  private get log(): Logger {
    return this.opts.log;
  }

  async start(): Promise<void> {
    await mkdir(path.dirname(this.paths.ledger), { recursive: true });
    this.presence = await claimDaemon(this.paths, this.opts.repo ? `lazarus watch --repo ${this.opts.repo.url}` : "lazarus watch");
    try {
      // Journal recovery and sweeps under the lock; when a command holds it past the wait, they run
      // before the first reconcile that gets it.
      await this.underLock(async () => undefined);
      await credentialDigestKey(path.dirname(this.paths.ledger), true); // loads digest credential values from the start
    } catch (err) {
      await this.presence.release();
      throw err;
    }
    if (this.opts.metricsPort !== undefined) {
      this.server = await this.metrics.serve(this.opts.metricsPort, this.opts.metricsHost, () => this.ready && !this.stopping);
      this.log.info({ port: this.opts.metricsPort, host: this.opts.metricsHost }, "serving /metrics and /healthz");
    }
    // Watching starts before the first read: an edit made while the first pass reads and
    // reconciles is reconciled right after it, not at the next resync. (Revisions arrive by
    // polling; exported trees never change.)
    if (!this.opts.repo) await this.watchFiles();
    if (this.opts.repo) {
      await this.pollRepo();
      if (this.revision) await this.reloadAll("start");
      else this.log.warn({ repo: this.opts.repo.url }, "no revision in force yet: nothing is reconciled until a valid commit arrives");
      this.schedulePoll();
    } else await this.reloadAll("start");
    this.ticker = cron.schedule(this.opts.tick, () => this.onTick(), { name: "lazarus-time-rules", noOverlap: true });
    this.resyncTimer = setInterval(() => this.enqueueAll("resync"), this.opts.resyncMs);
    this.resyncTimer.unref();
    this.ready = true;
    this.log.info({ config: this.opts.repo ? `${this.opts.repo.url} ${this.opts.repo.ref}` : path.resolve(this.configDir), revision: this.revision, state: path.dirname(this.paths.ledger), cells: this.states.size }, "watching");
  }

  // Follow cells.d/ and portfolios/: file events only queue the files, read once they settle.
  private async watchFiles(): Promise<void> {
    this.watcher = watch([path.join(this.configDir, "cells.d"), path.join(this.configDir, "portfolios")], { ignoreInitial: true, depth: 0 });
    const onFile = (abs: string): void => {
      const rel = path.relative(this.configDir, abs).split(path.sep).join("/");
      this.changedFiles.add(rel);
      clearTimeout(this.debounce);
      this.debounce = setTimeout(() => void this.onFilesSettled(), this.opts.debounceMs);
    };
    this.watcher.on("add", onFile).on("change", onFile).on("unlink", onFile);
    this.watcher.on("error", (err) => this.log.error({ err: errorMessage(err) }, "watch error"));
    await new Promise<void>((resolve) => this.watcher?.once("ready", () => resolve()));
  }

  // Re-read every file and reconcile every cell (start, SIGHUP).
  async reloadAll(why: string): Promise<void> {
    this.cache.invalidate();
    this.prints.clear(); // observe every cell afresh, changed or not
    await this.cache.refresh();
    this.reportDiagnostics(undefined);
    this.enqueueAll(why);
    await this.idle();
  }

  private async onFilesSettled(): Promise<void> {
    const files = [...this.changedFiles];
    this.changedFiles.clear();
    try {
      const { affected, changed } = await this.cache.refresh(files);
      if (changed.length === 0) return;
      this.log.info({ files: changed, cells: affected.size }, "config changed");
      this.reportDiagnostics(changed);
      this.enqueue(affected);
    } catch (err) {
      this.metrics.errors.inc({ kind: "config" });
      this.log.error({ err: errorMessage(err) }, "cannot read the config");
    }
  }

  private reportDiagnostics(files: string[] | undefined): void {
    const diags = files ? this.cache.diagnosticsFor(files) : this.cache.current().diagnostics;
    for (const d of diags) {
      if (d.severity === "error") this.metrics.errors.inc({ kind: "invalid-file" });
      this.log[d.severity === "error" ? "error" : "warn"]({ file: d.file, line: d.line, col: d.col, field: d.field }, formatDiagnostic(d));
    }
    for (const q of this.cache.current().desired.quarantined) {
      if (!files || files.includes(q.file)) this.log.warn({ file: q.file, cells: q.names }, "file quarantined: its cells are left as they are");
    }
  }

  private onTick(): void {
    const now = Date.now();
    const due: string[] = [];
    for (const [name, at] of this.wakes) if (at <= now) due.push(name);
    for (const [name, members] of this.pids) if (members.some((m) => !isAlive(m.pid, m.startTime))) due.push(name);
    if (due.length > 0) this.enqueue(due);
  }

  enqueue(names: Iterable<string>): void {
    for (const n of names) this.queued.add(n);
    this.kick();
  }

  enqueueAll(why: string): void {
    this.log.debug({ why }, "full reconcile queued");
    this.queuedAll = true;
    this.kick();
  }

  // Start work on what is queued: per cell one reconcile at a time (a name being worked on waits
  // in the queue), different cells at once, so one cell's long checkpoint holds up no other cell.
  // A full reconcile runs one at a time beside them, leaving out the cells at work.
  private kick(): void {
    if (this.stopping) return;
    if (this.queuedAll && !this.fullRunning) {
      this.queuedAll = false;
      this.fullRunning = true;
      this.spawn(this.reconcile({ all: true }).finally(() => (this.fullRunning = false)));
    }
    const ready = [...this.queued].filter((n) => !this.inflight.has(n));
    if (ready.length === 0 || this.workers.size >= MAX_WORKERS) return;
    for (const n of ready) this.queued.delete(n);
    this.spawn(this.reconcile({ all: false, names: new Set(ready) }));
  }

  private spawn(work: Promise<void>): void {
    const w: Promise<void> = work.finally(() => {
      this.workers.delete(w);
      this.kick();
    });
    this.workers.add(w);
  }

  // Resolves when nothing is queued or running.
  async idle(): Promise<void> {
    while (this.workers.size > 0) await Promise.all([...this.workers]);
  }

  // A full reconcile goes through every cell in chunks, so memory stays flat however many there are.
  private async reconcile(batch: Batch): Promise<void> {
    if (this.opts.repo && !this.revision) return; // nothing in force: never act on an empty config
    if (!batch.all) {
      const result = await this.reconcileNames(batch.names, "cells");
      this.metrics.reconciles.inc({ scope: "cells", result });
      if (result === "busy") this.retryLater(batch.names);
      return;
    }
    const end = this.metrics.reconcileSeconds.startTimer({ scope: "full" });
    let result: ReconcileResult = "success";
    try {
      await this.cache.refresh();
      await pausepoint("daemon:full-pass");
      const config = this.cache.current();
      const onDisk = await listNames(this.paths);
      const all = [...new Set([...config.desired.cells.keys(), ...onDisk.names])].sort();
      // Only what may have changed: the rest would plan exactly as it did.
      const now = Date.now();
      const deep = ++this.resyncs % DEEP_EVERY === 0;
      const disk = await listing(this.paths, onDisk.archives);
      const names = deep ? all : all.filter((n) => !this.unchangedSince(n, config, disk, now));
      this.metrics.resyncCells.inc({ outcome: "skipped" }, all.length - names.length);
      this.metrics.resyncCells.inc({ outcome: "observed" }, names.length);
      for (let i = 0; i < names.length && !this.stopping; i += FULL_CHUNK) {
        // A cell at work in another reconcile is queued for after it, not reconciled twice at once.
        const slice = names.slice(i, i + FULL_CHUNK);
        const busy = slice.filter((n) => this.inflight.has(n));
        if (busy.length > 0) this.enqueue(busy);
        const chunk = await this.reconcileNames(new Set(slice.filter((n) => !this.inflight.has(n))), undefined);
        if (chunk === "busy") {
          result = "busy";
          this.retryLater("all");
          return;
        }
        if (chunk === "error") result = "error";
      }
      const seen = new Set(all);
      for (const name of [...this.states.keys()]) if (!seen.has(name)) this.forget(name);
    } catch (err) {
      result = "error";
      this.metrics.errors.inc({ kind: "reconcile" });
      this.log.error({ err: errorMessage(err) }, "full reconcile failed");
    } finally {
      end();
      this.metrics.reconciles.inc({ scope: "full", result });
    }
  }

  // Whether the cell can be left out of a resync: observed before against this same config, no wake
  // due, and nothing on disk or in the process table changed since.
  private unchangedSince(name: string, config: object, seen: Listing, now: number): boolean {
    const p = this.prints.get(name);
    if (!p || p.config !== config) return false;
    const wake = this.wakes.get(name);
    if (wake !== undefined && wake <= now) return false;
    return unchanged(p.fp, diskPrint(this.paths, name, seen));
  }

  // A cell's state as the daemon knows it, and its gauge with it (one cell's work, not every cell's).
  private setState(name: string, state: string | undefined): void {
    if (state) this.states.set(name, state);
    else this.states.delete(name);
    this.metrics.setCellState(name, state);
  }

  private forget(name: string): void {
    this.prints.delete(name);
    this.setState(name, undefined);
    this.pids.delete(name);
    this.wakes.delete(name);
    this.metrics.forgetCell(name);
  }

  // Reconcile these cells: the recovery, observe and plan as withCells does them, each cell's actions
  // under its own lock. Busy when the state-dir lock could not be taken; error when an action (or the
  // reconcile) failed. A cell another process is acting on is looked at again shortly.
  private async reconcileNames(names: Set<string>, scope: "cells" | undefined): Promise<ReconcileResult> {
    for (const n of names) this.inflight.add(n);
    try {
      return await this.reconcileInflight(names, scope);
    } finally {
      for (const n of names) this.inflight.delete(n);
    }
  }

  private async reconcileInflight(names: Set<string>, scope: "cells" | undefined): Promise<ReconcileResult> {
    const end = scope ? this.metrics.reconcileSeconds.startTimer({ scope }) : () => 0;
    let failed = false;
    const failedCells = new Set<string>();
    const batch = { names };
    try {
      const done = await this.underLock((l) => this.reconcileLocked(l, names, failedCells, () => (failed = true)), true);
      if (done === BUSY) return "busy";
      for (const cell of failedCells) this.metrics.cellErrors.inc({ cell });
      if (failed) return "error";
      this.metrics.lastSuccess.set(Date.now() / 1000);
      return "success";
    } catch (err) {
      this.metrics.errors.inc({ kind: "reconcile" });
      this.log.error({ err: errorMessage(err) }, "reconcile failed");
      const retry = Date.now() + RETRY_MS;
      for (const n of batch.names) this.wakes.set(n, retry);
      return "error";
    } finally {
      end();
    }
  }

  // Whether the ledger's last time is ahead of the clock (heldUntil): said once when it starts (log,
  // ledger event, metric) and once when the clock passes it.
  private async noteClock(ledger: Ledger, now: number, heldUntil: number | undefined): Promise<void> {
    if (heldUntil === this.heldUntil) return;
    const was = this.heldUntil;
    this.heldUntil = heldUntil;
    this.metrics.timeRulesHeld.set(heldUntil === undefined ? 0 : heldUntil / 1000);
    if (heldUntil === undefined) {
      this.log.info({ until: new Date(was as number).toISOString() }, "the clock passed the ledger's last recorded time: time rules apply again");
      return;
    }
    const until = new Date(heldUntil).toISOString();
    const clock = new Date(now).toISOString();
    const reason = `the ledger's last recorded time ${until} is ahead of the clock ${clock} (an earlier command ran with a future --now): members are still supervised (down, restart), but no time rule (ttl, grace, retention, invitation and downed timeouts, checkpoint schedule) nor create, update or close is acted on until the clock passes ${until}`;
    this.log.warn({ until, clock }, reason);
    await ledger.append({ time: until, cell: "", action: "time-rules-held", reason, details: { until, clock } });
  }

  // observe → plan → apply for these cells, each cell's actions under its lock (taken at once or
  // not: a cell another process holds is skipped and queued again shortly). A cell is out of
  // the daemon's work as soon as its actions are done, so the next event for it is not held up by
  // the other cells of the batch. While the ledger's time is ahead of the clock, only the
  // supervision actions are applied (SUPERVISION), at the clock, their ledger entries stamped no
  // earlier than that time; the cells whose other actions wait are woken when the clock passes it.
  private async reconcileLocked(l: Locked, names: Set<string>, failedCells: Set<string>, onFail: () => void): Promise<void> {
    const config = this.cache.current();
    const { desired } = config;
    const { now, heldUntil } = await resolveNow(this.paths, undefined, "hold");
    await this.noteClock(l.ledger, now, heldUntil);
    // Disk prints before the observation they stand for (see fingerprint.ts).
    const disks = await this.diskPrints(names);
    const { observed, plan: p } = await observeAndPlan(this.paths, desired, now, names);
    for (const h of p.held) this.log.warn({ cell: h.cell, file: h.file }, "cell held: its file is quarantined");
    for (const d of p.diagnostics) this.log[d.severity === "error" ? "error" : "warn"]({ file: d.file, line: d.line }, formatDiagnostic(d));
    const actions = heldUntil === undefined ? p.actions : p.actions.filter((a) => SUPERVISION.has(a.kind));
    const waiting = new Set(p.actions.filter((a) => !actions.includes(a)).map((a) => a.cell));
    if (waiting.size > 0) this.log.debug({ cells: [...waiting], until: new Date(heldUntil as number).toISOString() }, "actions wait for the clock");
    const acting = new Set(actions.map((a) => a.cell));
    for (const n of names) if (!acting.has(n)) this.inflight.delete(n);
    const claims = cellClaims(this.paths, "lazarus watch", 0, (cell) => fingerprint(observed.cells.get(cell)), (cell) => this.inflight.delete(cell));
    const skipped = new Set<string>();
    const claim = async (cell: string) => {
      const c = await claims(cell);
      if ("skip" in c) skipped.add(cell);
      return c;
    };
    const results = await applyActions(
      actions,
      { ...applyEnv({ stopTimeoutMs: this.opts.stopTimeoutMs, ...(this.opts.hostSettings ? { hostSettings: this.opts.hostSettings } : {}) }, this.paths, this.configDir, now, this.revision, this.backends), stateLock: l.state },
      l.ledger,
      {
        shouldContinue: () => !this.stopping,
        postApply: (r) => {
          this.metrics.actions.inc({ action: r.action.kind, status: r.status });
          if (r.status === "applied") this.log.info({ cell: r.action.cell, action: r.action.kind, reason: r.action.reason }, "applied");
          else {
            onFail();
            failedCells.add(r.action.cell);
            this.metrics.errors.inc({ kind: "action" });
            this.log.error({ cell: r.action.cell, action: r.action.kind, reason: r.action.reason, err: r.status === "failed" ? r.error : r.because }, r.status === "failed" ? "action failed" : "action skipped");
          }
        },
      },
      { ...(this.opts.parallelism !== undefined ? { parallelism: this.opts.parallelism } : {}), ...(heldUntil !== undefined ? { ledgerTime: heldUntil } : {}), claim },
    );
    if (skipped.size > 0) this.retryLater(skipped);
    const touched = new Set(p.actions.map((a) => a.cell));
    const after = results.length > 0 ? await observeNames(this.paths, [...touched]) : { cells: new Map() };
    this.remember(names, observed, after, desired.cells, now, failedCells);
    for (const cell of waiting) if (!failedCells.has(cell)) this.wakes.set(cell, Math.max(heldUntil as number, Date.now() + 1000));
    // A fingerprint stands for an observation whose plan was empty: a cell acted on is observed
    // again at the next resync (its next plan may hold more), then left alone while it holds still.
    for (const name of names) {
      const fp = touched.has(name) ? undefined : fingerprintOf(disks.get(name), observed.cells.get(name));
      if (fp && this.states.has(name)) this.prints.set(name, { fp, config });
      else this.prints.delete(name);
    }
  }

  private async diskPrints(names: Iterable<string>): Promise<Map<string, string | undefined>> {
    const seen = await listing(this.paths);
    const out = new Map<string, string | undefined>();
    for (const n of names) out.set(n, diskPrint(this.paths, n, seen));
    return out;
  }

  // Keep what the clock tick needs: each cell's state, member pids and next wake.
  // A cell whose action failed is retried after RETRY_MS, not on every tick.
  private remember(names: Set<string>, before: Observed, after: Observed, desired: Map<string, import("../config/types.js").DesiredCell>, now: number, failed: Set<string>): void {
    for (const name of names) {
      const o: ObservedName | undefined = after.cells.get(name) ?? before.cells.get(name);
      const live = o?.live?.record;
      const state = live?.state ?? o?.graveyard?.record?.state ?? (o && o.archives.length > 0 ? "archived" : undefined);
      if (!state && !desired.has(name)) {
        this.forget(name);
        continue;
      }
      this.setState(name, state);
      // A cell whose members' exits are seen only by observing again (remote: another host's
      // pids) is polled instead (one ssh call per host).
      const polled = (rec: { backend: string } | undefined): boolean => (rec ? findBackend(rec.backend)?.capabilities.poll === true : false);
      const remote = polled(live) || polled(o?.graveyard?.record);
      const running = remote ? [] : (o?.live?.members ?? []).filter((m) => m.status === "running" && m.pid).map((m) => ({ pid: m.pid as number, ...(m.startTime ? { startTime: m.startTime } : {}) }));
      if (running.length > 0) this.pids.set(name, running);
      else this.pids.delete(name);
      let wake = failed.has(name) ? Date.now() + RETRY_MS : nextWake(desired.get(name), o, now);
      if (remote) wake = Math.min(wake ?? Number.POSITIVE_INFINITY, Date.now() + REMOTE_POLL_MS);
      if (wake !== undefined) this.wakes.set(name, Math.max(wake, Date.now() + 1000));
      else this.wakes.delete(name);
    }
  }

  private schedulePoll(): void {
    const repo = this.opts.repo;
    if (!repo || this.stopping) return;
    const jitter = repo.intervalMs * (0.9 + Math.random() * 0.2); // ±10%, so many hosts do not poll in step
    this.pollTimer = setTimeout(() => {
      void this.pollRepo().finally(() => this.schedulePoll());
    }, jitter);
  }

  // Fetch the ref; take a new commit whole, or record why not. The last good revision stays in force.
  private async pollRepo(): Promise<void> {
    const repo = this.opts.repo as RepoOptions;
    const stateRoot = path.dirname(this.paths.ledger);
    try {
      const { revision, subject, configDir } = await checkoutRevision(stateRoot, repo.url, repo.ref, repo.subdir);
      // Reading and writing the gitops status and the ledger: one writer at a time. A busy state dir
      // is tried again at the next poll.
      await this.underLock(() => this.judgeRevision(repo, stateRoot, revision, subject, configDir));
    } catch (err) {
      this.metrics.errors.inc({ kind: "git" });
      this.log.error({ repo: repo.url, err: errorMessage(err) }, "cannot fetch the config repo");
    }
  }

  // Take a fetched commit whole, or record why not (rejected, held): the one GitOps decision
  // (judgeRevision), as `lazarus sync` takes it. The caller holds the lock.
  private async judgeRevision(repo: RepoOptions, stateRoot: string, revision: string, subject: string, configDir: string): Promise<void> {
    const status = await readGitopsStatus(stateRoot);
    if (!this.revision && status?.inForce && status.inForce.revision !== revision) {
      // After a restart: the revision that was in force is in force again until the new one passes.
      this.revision = status.inForce.revision;
      this.configDir = await revisionDir(stateRoot, repo.url, status.inForce.revision, repo.subdir);
      this.cache = new ConfigCache(this.configDir, () => this.credentials());
    }
    if (revision === this.revision) return;
    // A revision already rejected or held is judged again only once approved (it cannot change).
    const judged = status?.lastAttempt?.revision === revision && (status.lastAttempt.outcome === "rejected" || status.lastAttempt.outcome === "held");
    if (judged && (await approvedRevision(stateRoot)) !== revision) return;
    const { now: clock, heldUntil } = await resolveNow(this.paths, undefined, "hold");
    const now = heldUntil ?? clock; // what it records is never earlier than the ledger's last time
    const loaded = await loadConfig(configDir, await this.credentials());
    const candidate = { revision, subject, configDir, loaded };
    const verdict = await judgeRevision(
      {
        stateRoot,
        ledger: this.ledger,
        repo: { url: repo.url, ref: repo.ref, ...(repo.subdir ? { subdir: repo.subdir } : {}) },
        budget: repo.budget,
        allowMassClose: false,
        now,
        ...(this.revision ? { inForce: this.revision } : {}),
        observeAndPlan: async (desired) => {
          const { observed, plan: p } = await observeAndPlan(this.paths, desired, now);
          return { observed, actions: p.actions };
        },
      },
      candidate,
    );
    const { decision } = verdict;
    if (decision.outcome === "rejected") {
      for (const d of decision.diagnostics) if (d.severity === "error") this.log.error({ revision, file: d.file, line: d.line, col: d.col }, formatDiagnostic(d));
      this.metrics.errors.inc({ kind: "invalid-revision" });
      return;
    }
    if (decision.outcome === "held") {
      this.log.warn({ revision, closes: decision.closes }, decision.detail);
      return;
    }
    this.log.info({ revision, subject }, "new revision in force");
    this.revision = revision;
    this.configDir = configDir;
    this.cache = new ConfigCache(configDir, () => this.credentials());
    await this.cache.refresh();
    await recordInForce(stateRoot, verdict.status, candidate, verdict.at, "applied", `in force from ${verdict.at}`);
    this.enqueueAll("new revision");
  }

  // Stop: finish the action in progress, leave members running, release the state dir.
  async stop(signal: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info({ signal }, "stopping: finishing the action in progress; members keep running");
    clearTimeout(this.debounce);
    clearInterval(this.resyncTimer);
    clearTimeout(this.pollTimer);
    clearTimeout(this.retryTimer);
    await this.ticker?.stop();
    await this.watcher?.close();
    await this.idle();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await this.presence?.release();
    this.log.info({}, "stopped");
  }
}
