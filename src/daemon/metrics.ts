// Prometheus metrics and a health check, served only when --metrics-port is given.
import http from "node:http";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { CELL_STATES } from "../cells/lifecycle.js";

export class Metrics {
  readonly registry = new Registry();
  readonly cells = new Gauge({ name: "lazarus_cells", help: "Cells by lifecycle state", labelNames: ["state"], registers: [this.registry] });
  readonly actions = new Counter({ name: "lazarus_actions_total", help: "Actions by kind and outcome", labelNames: ["action", "status"], registers: [this.registry] });
  readonly reconcileSeconds = new Histogram({
    name: "lazarus_reconcile_duration_seconds",
    help: "Duration of one reconcile (load, observe, plan, apply)",
    labelNames: ["scope"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly errors = new Counter({ name: "lazarus_errors_total", help: "Errors: failed actions, invalid files, failed reconciles", labelNames: ["kind"], registers: [this.registry] });
  readonly resyncCells = new Counter({ name: "lazarus_resync_cells_total", help: "Cells a periodic resync observed, or skipped as unchanged since they were last observed", labelNames: ["outcome"], registers: [this.registry] });
  readonly lastSuccess = new Gauge({ name: "lazarus_last_successful_reconcile_timestamp_seconds", help: "Unix time of the last reconcile that ended without error", registers: [this.registry] });

  setCellStates(states: Iterable<string>): void {
    const counts = new Map<string, number>(CELL_STATES.map((s) => [s, 0]));
    for (const s of states) counts.set(s, (counts.get(s) ?? 0) + 1);
    for (const [state, n] of counts) this.cells.set({ state }, n);
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
