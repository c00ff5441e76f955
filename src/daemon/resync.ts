// The full pass (start, SIGHUP, every --resync, a new revision): re-read the config, then
// reconcile every cell that may have changed since it was last observed, in chunks so memory stays
// flat however many cells there are. Every DEEP_EVERY-th pass observes every cell, changed or not
// (a net under the fingerprints of fingerprint.ts).
import { listNames } from "../observe/observe.js";
import { errorMessage } from "../util/errors.js";
import { pausepoint } from "../util/failpoint.js";
import type { DaemonContext } from "./context.js";
import { listing } from "./fingerprint.js";
import type { ReconcileResult } from "./metrics.js";
import { LOCK_RETRY_MS, settle } from "./outcome.js";
import type { CellReconciler } from "./reconcile.js";

const FULL_CHUNK = 250;
const DEEP_EVERY = 12;

export class FullPass {
  private passes = 0;

  constructor(
    private readonly ctx: DaemonContext,
    private readonly cells: CellReconciler,
  ) {}

  async run(): Promise<void> {
    const { metrics, log } = this.ctx;
    const end = metrics.reconcileSeconds.startTimer({ scope: "full" });
    let result: ReconcileResult = "success";
    try {
      result = await this.pass();
    } catch (err) {
      result = "error";
      metrics.errors.inc({ kind: "reconcile" });
      log.error({ err: errorMessage(err) }, "full reconcile failed");
    } finally {
      end();
      metrics.reconciles.inc({ scope: "full", result });
    }
  }

  private async pass(): Promise<ReconcileResult> {
    const { paths, metrics, queue } = this.ctx;
    const cache = this.ctx.config.cache;
    await cache.refresh();
    await pausepoint("daemon:full-pass");
    const config = cache.current();
    const onDisk = await listNames(paths);
    const all = [...new Set([...config.desired.cells.keys(), ...onDisk.names])].sort();
    // Only what may have changed: the rest would plan exactly as it did.
    const now = Date.now();
    const deep = ++this.passes % DEEP_EVERY === 0;
    const disk = await listing(paths, onDisk.archives);
    const names = deep ? all : all.filter((n) => !this.cells.unchangedSince(n, config, disk, now, queue.dueAt(n)));
    metrics.resyncCells.inc({ outcome: "skipped" }, all.length - names.length);
    metrics.resyncCells.inc({ outcome: "observed" }, names.length);
    let result: ReconcileResult = "success";
    for (let i = 0; i < names.length && !this.ctx.stopping(); i += FULL_CHUNK) {
      // A cell at work in another reconcile is queued for after it, not reconciled twice at once.
      const mine = queue.claim(names.slice(i, i + FULL_CHUNK));
      const report = await this.cells.reconcile(mine, undefined).finally(() => mine.forEach((n) => queue.release(n)));
      if (report.result === "busy") {
        queue.addAllAfter(LOCK_RETRY_MS);
        return "busy";
      }
      for (const [n, o] of report.outcomes) settle(queue, n, o);
      if (report.result === "error") result = "error";
    }
    const seen = new Set(all);
    for (const name of this.cells.knownNames()) {
      if (seen.has(name)) continue;
      this.cells.forget(name);
      queue.remove(name);
    }
    return result;
  }
}
