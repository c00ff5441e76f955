// lazarus watch: a long-running reconciler in three parts. Sources (sources/: the config files,
// the tick, member exits, the resync, a GitOps repo) only enqueue cell names; the work queue
// (queue.ts) runs one reconcile per cell at a time, with backoff; the reconcile step (reconcile.ts,
// resync.ts) reads the world afresh and says when each cell wants to run again (outcome.ts).
// This file wires them, serves metrics and holds the daemon's presence in the state dir.
import { mkdir } from "node:fs/promises";
import type http from "node:http";
import path from "node:path";
import { statePaths } from "../cells/layout.js";
import { formatDiagnostic } from "../config/diagnostics.js";
import { credentialContext } from "../engine.js";
import { credentialDigestKey } from "../host/digest-key.js";
import type { CredentialContext } from "../host/secrets.js";
import { hostSettings } from "../host/settings.js";
import { Ledger } from "../ledger/ledger.js";
import type { Lock } from "../lock/lock.js";
import { backends } from "../backends/registry.js";
import { errorMessage } from "../util/errors.js";
import { eventsFile } from "../egress/state.js";
import { gatewayEventsFile } from "../gateway/state.js";
import { ConfigInForce, type DaemonContext, type DaemonOptions } from "./context.js";
import type { Logger } from "./log.js";
import { Metrics } from "./metrics.js";
import { settle } from "./outcome.js";
import { claimDaemon } from "./presence.js";
import { WorkQueue } from "./queue.js";
import { CellReconciler } from "./reconcile.js";
import { FullPass } from "./resync.js";
import { RevisionFollower } from "./revision.js";
import { DaemonLock } from "./state-lock.js";
import { every, onTick, type Stoppable } from "./sources/clock.js";
import { FileSource } from "./sources/files.js";
import { GitPoller } from "./sources/git.js";

export type { DaemonOptions, RepoOptions } from "./context.js";

const MAX_WORKERS = 8; // reconciles at once (each of other cells)

export class Daemon {
  private readonly ctx: DaemonContext;
  private readonly cells: CellReconciler;
  private readonly full: FullPass;
  private readonly follower: RevisionFollower | undefined;
  private presence: Lock | undefined; // <state>/watch.pid, held from start to stop
  private readonly sources: Stoppable[] = [];
  private poller: GitPoller | undefined;
  private server: http.Server | undefined;
  private stopping = false;
  private ready = false;

  constructor(private readonly opts: DaemonOptions) {
    const paths = statePaths(opts.stateDir);
    const metrics = new Metrics();
    metrics.watchEgress(eventsFile(path.dirname(paths.ledger)));
    metrics.watchGateway(gatewayEventsFile(path.dirname(paths.ledger)));
    metrics.watchOutbox(path.dirname(paths.ledger));
    // A member this daemon started reports its exit: its cell is queued at once.
    const onExit = (spec: { cell: string; identity: string }, pid: number): void => {
      opts.log.info({ cell: spec.cell, member: spec.identity, pid }, "member process exited");
      this.ctx.queue.add([spec.cell]);
    };
    const registry = backends(
      path.dirname(paths.ledger),
      process.env,
      opts.hostSettings ?? hostSettings(process.env),
      onExit,
    );
    const credentials = (): Promise<CredentialContext> =>
      credentialContext({ ...(opts.hostSettings ? { hostSettings: opts.hostSettings } : {}) }, paths);
    const queue = new WorkQueue(
      {
        reconcile: (names) => this.reconcileCells(names),
        reconcileAll: () => this.reconcileAll(),
        crashed: (err) => this.log.error({ err: errorMessage(err) }, "bug: a reconcile threw"),
      },
      MAX_WORKERS,
    );
    this.ctx = {
      opts,
      paths,
      log: opts.log,
      metrics,
      backends: registry,
      ledger: new Ledger(paths.ledger, paths.ledgerHead),
      config: new ConfigInForce(opts.configDir, credentials),
      queue,
      lock: new DaemonLock(opts, registry, opts.log, metrics),
      credentials,
      enqueueAll: (why) => this.enqueueAll(why),
      stopping: () => this.stopping,
    };
    this.cells = new CellReconciler(this.ctx);
    this.full = new FullPass(this.ctx, this.cells);
    this.follower = opts.repo ? new RevisionFollower(this.ctx, opts.repo) : undefined;
  }

  private get log(): Logger {
    return this.opts.log;
  }

  async start(): Promise<void> {
    const { paths, metrics, config } = this.ctx;
    await mkdir(path.dirname(paths.ledger), { recursive: true });
    this.presence = await claimDaemon(
      paths,
      this.opts.repo ? `lazarus watch --repo ${this.opts.repo.url}` : "lazarus watch",
    );
    try {
      // Journal recovery and sweeps under the lock; when a command holds it past the wait, they run
      // before the first reconcile that gets it.
      await this.ctx.lock.run(async () => undefined);
      await credentialDigestKey(path.dirname(paths.ledger), true); // loads digest credential values from the start
    } catch (err) {
      await this.presence.release();
      throw err;
    }
    if (this.opts.metricsPort !== undefined) {
      this.server = await metrics.serve(
        this.opts.metricsPort,
        this.opts.metricsHost,
        () => this.ready && !this.stopping,
      );
      this.log.info({ port: this.opts.metricsPort, host: this.opts.metricsHost }, "serving /metrics and /healthz");
    }
    await this.startConfigSources();
    this.sources.push(onTick(this.opts.tick, () => this.ctx.queue.add(this.cells.pids.exited())));
    this.sources.push(every(this.opts.resyncMs, () => this.enqueueAll("resync")));
    this.ready = true;
    const where = this.opts.repo ? `${this.opts.repo.url} ${this.opts.repo.ref}` : path.resolve(config.dir);
    this.log.info(
      { config: where, revision: config.revision, state: path.dirname(paths.ledger), cells: this.cells.known },
      "watching",
    );
  }

  // Watching starts before the first read: an edit made while the first pass reads and reconciles
  // is reconciled right after it, not at the next resync. (Revisions arrive by polling; exported
  // trees never change.)
  private async startConfigSources(): Promise<void> {
    const { follower } = this;
    if (!follower) {
      const files = await FileSource.start({
        configDir: this.ctx.config.dir,
        debounceMs: this.opts.debounceMs,
        settled: (changed) => void this.onFilesSettled(changed),
        error: (err) => this.log.error({ err: errorMessage(err) }, "watch error"),
      });
      this.sources.push({ stop: () => files.stop() });
      await this.reloadAll("start");
      return;
    }
    await follower.poll();
    if (this.ctx.config.revision) await this.reloadAll("start");
    else
      this.log.warn(
        { repo: this.opts.repo?.url },
        "no revision in force yet: nothing is reconciled until a valid commit arrives",
      );
    this.poller = new GitPoller(this.opts.repo?.intervalMs ?? 120_000, () => follower.poll());
    this.poller.start();
  }

  // Re-read every file and reconcile every cell (start, SIGHUP).
  async reloadAll(why: string): Promise<void> {
    const { cache } = this.ctx.config;
    cache.invalidate();
    this.cells.forgetPrints(); // observe every cell afresh, changed or not
    await cache.refresh();
    this.reportDiagnostics(undefined);
    this.enqueueAll(why);
    await this.ctx.queue.idle();
  }

  private async onFilesSettled(files: string[]): Promise<void> {
    try {
      const { affected, changed } = await this.ctx.config.cache.refresh(files);
      if (changed.length === 0) return;
      this.log.info({ files: changed, cells: affected.size }, "config changed");
      this.reportDiagnostics(changed);
      this.ctx.queue.add(affected);
    } catch (err) {
      this.ctx.metrics.errors.inc({ kind: "config" });
      this.log.error({ err: errorMessage(err) }, "cannot read the config");
    }
  }

  private reportDiagnostics(files: string[] | undefined): void {
    const { cache } = this.ctx.config;
    const diags = files ? cache.diagnosticsFor(files) : cache.current().diagnostics;
    for (const d of diags) {
      if (d.severity === "error") this.ctx.metrics.errors.inc({ kind: "invalid-file" });
      this.log[d.severity === "error" ? "error" : "warn"](
        { file: d.file, line: d.line, col: d.col, field: d.field },
        formatDiagnostic(d),
      );
    }
    for (const q of cache.current().desired.quarantined) {
      if (!files || files.includes(q.file))
        this.log.warn({ file: q.file, cells: q.names }, "file quarantined: its cells are left as they are");
    }
  }

  enqueue(names: Iterable<string>): void {
    this.ctx.queue.add(names);
  }

  enqueueAll(why: string): void {
    this.log.debug({ why }, "full reconcile queued");
    this.ctx.queue.addAll();
  }

  // Whether there is a config to act on: in repo mode, none until a revision is in force (never
  // act on an empty config).
  private get inForce(): boolean {
    return !this.opts.repo || this.ctx.config.revision !== undefined;
  }

  // The queue's handler for a batch of cells: reconcile, then settle each cell's outcome.
  private async reconcileCells(names: Set<string>): Promise<void> {
    if (!this.inForce) return;
    const report = await this.cells.reconcile(names, "cells");
    this.ctx.metrics.reconciles.inc({ scope: "cells", result: report.result });
    for (const [n, o] of report.outcomes) settle(this.ctx.queue, n, o);
  }

  private async reconcileAll(): Promise<void> {
    if (this.inForce) await this.full.run();
  }

  // Stop: finish the action in progress, leave members running, release the state dir.
  async stop(signal: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info({ signal }, "stopping: finishing the action in progress; members keep running");
    this.ctx.queue.stop();
    this.poller?.stop();
    for (const s of this.sources) await s.stop();
    await this.ctx.queue.idle();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await this.presence?.release();
    this.log.info({}, "stopped");
  }
}
