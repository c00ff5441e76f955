// Prometheus metrics and a health check, served only when --metrics-port is given.
// Every metric has help text, counters end in _total, and `promtool check metrics` finds nothing
// to say about a scrape (test/integration/metrics.test.ts); docs/operations.md lists them.
import http from "node:http";
import { readFileSync } from "node:fs";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { CELL_STATES } from "../cells/lifecycle.js";
import { EgressTally } from "../egress/events.js";
import { GatewayTally } from "../gateway/spend.js";
import { readEntries } from "../forge/outbox.js";

export type ReconcileResult = "success" | "error" | "busy";

const PUSH_OUTCOMES = ["pushed", "failed", "rejected", "retried"] as const;

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string })
      .version;
  } catch {
    return "unknown";
  }
}

export class Metrics {
  readonly registry = new Registry();
  readonly cells = new Gauge({
    name: "lazarus_cells",
    help: "Cells by lifecycle state",
    labelNames: ["state"],
    registers: [this.registry],
  });
  // One series per cell, value 1, for its current state (a cell that moves drops its old series):
  // count by (state), or alert on one cell stuck in a state.
  readonly cellState = new Gauge({
    name: "lazarus_cell_state",
    help: "The lifecycle state of each cell the daemon knows (always 1; the state is the label)",
    labelNames: ["cell", "state"],
    registers: [this.registry],
  });
  readonly actions = new Counter({
    name: "lazarus_actions_total",
    help: "Actions by kind and outcome",
    labelNames: ["action", "status"],
    registers: [this.registry],
  });
  readonly reconcileSeconds = new Histogram({
    name: "lazarus_reconcile_duration_seconds",
    help: "Duration of one reconcile (load, observe, plan, apply)",
    labelNames: ["scope"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly reconciles = new Counter({
    name: "lazarus_reconciles_total",
    help: "Reconciles by scope (cells: the cells an event named; full: every cell) and result (success; error: an action or the reconcile failed; busy: the state dir was locked, tried again)",
    labelNames: ["scope", "result"],
    registers: [this.registry],
  });
  readonly cellErrors = new Counter({
    name: "lazarus_cell_reconcile_errors_total",
    help: "Reconciles of a cell in which one of its actions failed or was skipped",
    labelNames: ["cell"],
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: "lazarus_errors_total",
    help: "Errors: failed actions, invalid files, failed reconciles",
    labelNames: ["kind"],
    registers: [this.registry],
  });
  readonly resyncCells = new Counter({
    name: "lazarus_resync_cells_total",
    help: "Cells a periodic resync observed, or skipped as unchanged since they were last observed",
    labelNames: ["outcome"],
    registers: [this.registry],
  });
  readonly lastSuccess = new Gauge({
    name: "lazarus_last_successful_reconcile_timestamp_seconds",
    help: "Unix time of the last reconcile that ended without error",
    registers: [this.registry],
  });
  readonly timeRulesHeld = new Gauge({
    name: "lazarus_time_rules_held_until_timestamp_seconds",
    help: "While the ledger's last recorded time is ahead of the clock (an earlier command ran with a future --now): that time, until which no time rule is acted on (members are still supervised); 0 otherwise",
    registers: [this.registry],
  });
  readonly info = new Gauge({
    name: "lazarus_build_info",
    help: "The running Lazarus version (always 1)",
    labelNames: ["version"],
    registers: [this.registry],
  });
  // Connections through the egress proxy, by cell and verdict (allowed, refused), read from the
  // proxy's events file at each scrape.
  readonly egress = new Counter({
    name: "lazarus_egress_connections_total",
    help: "Connection attempts of egress cells' members through the proxy, by cell and verdict",
    labelNames: ["cell", "verdict"],
    registers: [this.registry],
    collect: () => this.collectEgress(),
  });
  // Commit-or-abort (spec.progress): seconds since each running executor's cell last showed
  // progress (computed at each scrape), and stalls handled by cell and outcome.
  readonly sinceProgress = new Gauge({
    name: "lazarus_member_seconds_since_progress",
    help: "Seconds since the cell of each running executor last showed progress (a new commit in project/, a new or changed file under shared/artifacts/; the clock's start when none yet); cells with spec.progress only",
    labelNames: ["cell", "member"],
    registers: [this.registry],
    collect: () => this.collectProgress(),
  });
  readonly stalls = new Counter({
    name: "lazarus_stalls_total",
    help: "Stalls handled (no progress for a slice while executors ran), by cell and outcome (restart, substitute, abort, notify)",
    labelNames: ["cell", "outcome"],
    registers: [this.registry],
  });
  private readonly progress = new Map<string, { since: number; members: string[] }>(); // cell → last progress
  // Forge comments in the outbox by status (pending: waiting to be retried; failed: not published,
  // a publish-failed event says why), read from the outbox at each scrape (docs/forges.md).
  readonly publish = new Gauge({
    name: "lazarus_publish_comments",
    help: "Forge comments in the outbox by status (pending, done, failed)",
    labelNames: ["status"],
    registers: [this.registry],
    collect: () => this.collectPublish(),
  });
  // The daemon's pushes of cells' branches (spec.push), counted as each publish pass reports them.
  readonly pushes = new Counter({
    name: "lazarus_pushes_total",
    help: "Pushes of cells' branches to their forge by the daemon, by outcome (pushed; rejected: the forge refused the update, never forced; failed: for good until the next checkpoint; retried: failed for a passing reason, tried again after a backoff)",
    labelNames: ["outcome"],
    registers: [this.registry],
  });
  private outboxRoot: string | undefined;
  private egressTally: EgressTally | undefined;
  // Calls through the model gateway, their tokens and cost, by cell and the model that served them,
  // read from the gateway's events file at each scrape.
  readonly gatewayCalls = new Counter({
    name: "lazarus_gateway_calls_total",
    help: "Model calls the gateway served for members, by cell and the model that served them",
    labelNames: ["cell", "model"],
    registers: [this.registry],
    collect: () => this.refreshGateway(),
  });
  readonly gatewayTokens = new Counter({
    name: "lazarus_gateway_tokens_total",
    help: "Tokens of model calls served through the gateway, by cell, model and direction (input, output)",
    labelNames: ["cell", "model", "direction"],
    registers: [this.registry],
    collect: () => this.refreshGateway(),
  });
  readonly gatewayCost = new Counter({
    name: "lazarus_gateway_cost_total",
    help: "Cost of model calls served through the gateway (portfolio prices), by cell and model",
    labelNames: ["cell", "model"],
    registers: [this.registry],
    collect: () => this.refreshGateway(),
  });
  private gatewayTally: GatewayTally | undefined;
  private gatewayRead: Promise<void> | undefined; // one read of the events file per scrape
  private readonly shown = new Map<string, string>(); // cell → the state its lazarus_cell_state series carries
  private readonly counts = new Map<string, number>(); // state → cells shown in it

  constructor() {
    // process_* (CPU, resident memory, open fds, start time: a restart shows) and nodejs_* (heap, event loop lag)
    collectDefaultMetrics({ register: this.registry });
    // prom-client's totals of the handles/requests/resources gauges break the naming rule (a
    // gauge named _total); the per-type nodejs_active_* gauges say the same.
    for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"])
      this.registry.removeSingleMetric(name);
    this.info.set({ version: version() }, 1);
    for (const state of CELL_STATES) this.count(state, 0);
    for (const scope of ["cells", "full"])
      for (const result of ["success", "error", "busy"]) this.reconciles.inc({ scope, result }, 0);
    for (const outcome of PUSH_OUTCOMES) this.pushes.inc({ outcome }, 0);
  }

  // What one publish pass did with the pushes it tried.
  countPushes(r: Record<(typeof PUSH_OUTCOMES)[number], number>): void {
    for (const outcome of PUSH_OUTCOMES) if (r[outcome] > 0) this.pushes.inc({ outcome }, r[outcome]);
  }

  // One cell's state (undefined: the daemon no longer knows the cell): the per-state counts (every
  // state present, 0 when empty) and one series per cell, changed by one cell's work.
  setCellState(cell: string, state: string | undefined): void {
    const was = this.shown.get(cell);
    if (was === state) return;
    if (was !== undefined) {
      this.cellState.remove({ cell, state: was });
      this.shown.delete(cell);
      this.count(was, -1);
    }
    if (state !== undefined) {
      this.cellState.set({ cell, state }, 1);
      this.shown.set(cell, state);
      this.count(state, 1);
    }
  }

  private count(state: string, by: number): void {
    const n = (this.counts.get(state) ?? 0) + by;
    this.counts.set(state, n);
    this.cells.set({ state }, n);
  }

  // Count the egress connections of this state dir from now on.
  watchEgress(eventsFile: string): void {
    this.egressTally = new EgressTally(eventsFile);
  }

  // Count the forge outbox of this state dir at each scrape.
  watchOutbox(stateRoot: string): void {
    this.outboxRoot = stateRoot;
  }

  private async collectPublish(): Promise<void> {
    const counts: Record<string, number> = { pending: 0, done: 0, failed: 0 };
    if (this.outboxRoot)
      for (const e of await readEntries(this.outboxRoot).catch(() => []))
        counts[e.status] = (counts[e.status] ?? 0) + 1;
    for (const [status, n] of Object.entries(counts)) this.publish.set({ status }, n);
  }

  private async collectEgress(): Promise<void> {
    const counts = await this.egressTally?.newCounts();
    for (const c of counts?.values() ?? []) this.egress.inc({ cell: c.cell, verdict: c.verdict }, c.n);
  }

  // Count the model gateway's calls of this state dir from now on.
  watchGateway(eventsFile: string): void {
    this.gatewayTally = new GatewayTally(eventsFile);
  }

  // The three gateway counters are collected at once by a scrape: they share one read.
  private refreshGateway(): Promise<void> {
    this.gatewayRead ??= this.collectGateway().finally(() => (this.gatewayRead = undefined));
    return this.gatewayRead;
  }

  private async collectGateway(): Promise<void> {
    for (const c of (await this.gatewayTally?.newCounts()) ?? []) {
      const l = { cell: c.cell, model: c.model };
      this.gatewayCalls.inc(l, c.calls);
      this.gatewayTokens.inc({ ...l, direction: "input" }, c.tokensIn);
      this.gatewayTokens.inc({ ...l, direction: "output" }, c.tokensOut);
      this.gatewayCost.inc(l, c.cost);
    }
  }

  // A cell the daemon forgot (its files and its state dir entries are gone): its counters go too.
  forgetCell(cell: string): void {
    this.cellErrors.remove({ cell });
    this.progress.delete(cell);
  }

  // The cell's last progress (Unix ms) and its running executors; undefined: not judged.
  setProgress(cell: string, p: { since: number; members: string[] } | undefined): void {
    if (p && p.members.length > 0) this.progress.set(cell, p);
    else this.progress.delete(cell);
  }

  private collectProgress(): void {
    this.sinceProgress.reset();
    const now = Date.now();
    for (const [cell, p] of this.progress)
      for (const member of p.members) this.sinceProgress.set({ cell, member }, Math.max(0, (now - p.since) / 1000));
  }

  // Serve /metrics and /healthz; resolves with the server once it listens.
  serve(port: number, host: string, healthy: () => boolean): Promise<http.Server> {
    const server = http.createServer((req, res) => {
      if (req.url === "/metrics") {
        this.registry
          .metrics()
          .then((body) => {
            res.writeHead(200, { "content-type": this.registry.contentType });
            res.end(body);
          })
          .catch((err: unknown) => {
            res.writeHead(500);
            res.end(String(err));
          });
      } else if (req.url === "/healthz") {
        const ok = healthy();
        res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" });
        res.end(ok ? "ok\n" : "not ready\n");
      } else {
        res.writeHead(404);
        res.end("not found\n");
      }
    });
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve(server));
    });
  }
}
