// What the parts of the daemon share: its options, the state dir, logs and metrics, the backends,
// the config in force and the work queue. daemon.ts builds it once.
import type { StatePaths } from "../cells/layout.js";
import type { Backends } from "../backends/registry.js";
import type { Budget } from "../gitops/budget.js";
import type { CredentialContext } from "../host/secrets.js";
import type { HostSettings } from "../host/settings.js";
import type { Ledger } from "../ledger/ledger.js";
import { ConfigCache } from "./config-cache.js";
import type { Logger } from "./log.js";
import type { Metrics } from "./metrics.js";
import type { WorkQueue } from "./queue.js";
import type { DaemonLock } from "./state-lock.js";

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
  tick: string; // node-cron expression for member liveness checks
  stopTimeoutMs: number;
  metricsPort?: number;
  metricsHost: string;
  log: Logger;
  hostSettings?: HostSettings; // where credentials may come from (--secrets-dir, LAZARUS_*)
  parallelism?: number; // cells applied at once in a reconcile (default DEFAULT_PARALLELISM)
  lockTimeoutMs?: number; // how long each reconcile waits for another holder of the state-dir lock (default 5s)
}

// The config the daemon reconciles against: a directory and its parsed files; in repo mode also
// the revision in force (none yet: nothing is reconciled).
export class ConfigInForce {
  cache: ConfigCache;
  revision: string | undefined;

  constructor(
    public dir: string,
    private readonly credentials: () => Promise<CredentialContext>,
  ) {
    this.cache = new ConfigCache(dir, credentials);
  }

  // Reconcile against this directory (a revision's tree) from now on.
  use(dir: string, revision: string): void {
    this.dir = dir;
    this.revision = revision;
    this.cache = new ConfigCache(dir, this.credentials);
  }
}

export interface DaemonContext {
  readonly opts: DaemonOptions;
  readonly paths: StatePaths;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly backends: Backends;
  readonly ledger: Ledger;
  readonly config: ConfigInForce;
  readonly queue: WorkQueue;
  readonly lock: DaemonLock;
  // The operator's credential sources and the state dir's digest key, read afresh each time.
  credentials(): Promise<CredentialContext>;
  // Queue a full pass (why: for the debug log).
  enqueueAll(why: string): void;
  stopping(): boolean;
}
