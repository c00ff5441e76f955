// The daemon's hold of the state dir: each reconcile (and each GitOps decision) takes the
// state-dir lock, waiting at most --lock-timeout for a command that holds it. Past that the work
// is BUSY (the caller queues it again shortly); the daemon never exits for it.
import type { Backends } from "../backends/registry.js";
import { withCells, withStateLock, type Locked } from "../engine.js";
import { LazarusError, errorMessage } from "../util/errors.js";
import type { HostSettings } from "../host/settings.js";
import type { Logger } from "./log.js";
import type { Metrics } from "./metrics.js";

export const BUSY = Symbol("state dir busy");

// What of the daemon's options the lock needs.
export interface LockSettings {
  stateDir?: string;
  lockTimeoutMs?: number; // default 5 s
  hostSettings?: HostSettings;
}

export class DaemonLock {
  private recovered = false; // the start-up sweep ran (under the lock)

  constructor(
    private readonly opts: LockSettings,
    private readonly backends: Backends,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {}

  // Run body holding the state-dir lock (cells: only for the recovery, then each cell's actions
  // under that cell's lock); BUSY when it could not be taken. A run interrupted earlier is
  // recorded (journal → ledger) first, and at the first hold the leftovers of killed writers are swept.
  async run<T>(body: (l: Locked) => Promise<T>, cells = false): Promise<T | typeof BUSY> {
    const { opts } = this;
    const lockOpts = {
      ...(opts.stateDir ? { stateDir: opts.stateDir } : {}),
      lockTimeoutMs: opts.lockTimeoutMs ?? 5_000,
      ...(opts.hostSettings ? { hostSettings: opts.hostSettings } : {}),
    };
    const onThawed = (thawed: string[]): void =>
      this.log.warn({ cells: thawed }, "thawed cells a killed checkpoint left frozen");
    try {
      return await (cells ? withCells : withStateLock)(
        lockOpts,
        "lazarus watch",
        async (l) => {
          this.recovered = true;
          return body(l);
        },
        { sweep: !this.recovered, backends: this.backends, holdFutureLedger: true, onThawed },
      );
    } catch (err) {
      if (!(err instanceof LazarusError) || err.code !== "LOCKED") throw err;
      this.metrics.errors.inc({ kind: "locked" });
      this.log.warn({ err: errorMessage(err) }, "state dir busy: trying again shortly");
      return BUSY;
    }
  }
}
