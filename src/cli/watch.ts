import v8 from "node:v8";
import { Command, Option } from "commander";
import { Daemon } from "../daemon/daemon.js";
import { createLogger, type Logger } from "../daemon/log.js";
import { resolveStateDir } from "../compute.js";
import { action, hostOptions, withCommon, withLockTimeout, withParallelism, type CommonOpts } from "./common.js";
import { typedOption } from "./flags.js";
import { budgetFrom, withBudget, type BudgetOpts } from "./sync.js";

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "silent"];

export function watchCommand(): Command {
  return withParallelism(withLockTimeout(withBudget(withCommon(new Command("watch")), "with --repo: ")))
    .description(
      "keep the cells converged: reconcile on every change under cells.d/, on the clock and on process exits",
    )
    .addOption(
      typedOption(
        "--debounce <duration>",
        "wait this long after the last file event before reconciling (plain numbers are milliseconds)",
        { kind: "duration", plainMs: true },
        { value: 200, shown: "200ms" },
      ),
    )
    .addOption(
      typedOption(
        "--resync <duration>",
        "reconcile every cell this often, to catch drift made behind Lazarus's back",
        { kind: "duration", min: 1 },
        { value: 300_000, shown: "5m" },
      ),
    )
    .addOption(new Option("--log-level <level>", "how much to log").choices(LOG_LEVELS).default("info"))
    .addOption(
      typedOption("--metrics-port <port>", "serve Prometheus /metrics and /healthz on this port (off by default)", {
        kind: "int",
        min: 0,
        max: 65535,
      }),
    )
    .option("--metrics-host <host>", "address to serve metrics on", "127.0.0.1")
    .addOption(
      typedOption(
        "--stop-timeout <duration>",
        "how long a member has after SIGTERM before SIGKILL (plain numbers are milliseconds)",
        { kind: "duration", plainMs: true },
        { value: 10_000, shown: "10s" },
      ),
    )
    .option("--repo <url|path>", "follow this git repo (GitOps) instead of the local config dir")
    .option("--ref <ref>", "with --repo: the branch or tag to follow", "main")
    .option("--path <subdir>", "with --repo: the directory holding cells.d/ and portfolios/")
    .addOption(
      typedOption(
        "--interval <duration>",
        "with --repo: how often to poll (with ±10% jitter)",
        { kind: "duration", min: 1 },
        { value: 120_000, shown: "2m" },
      ),
    )
    .addOption(
      typedOption(
        "--tick <cron>",
        "how often the members it did not start are checked for liveness (node-cron, with seconds)",
        { kind: "cron" },
        { value: "*/5 * * * * *", shown: "*/5 * * * * *" },
      ),
    )
    .action(action(runWatch));
}

type WatchOpts = CommonOpts &
  BudgetOpts & {
    repo?: string;
    ref: string;
    path?: string;
    interval: number;
    debounce: number;
    resync: number;
    logLevel: string;
    metricsPort?: number;
    metricsHost: string;
    stopTimeout: number;
    tick: string;
    parallelism: number;
  };

// The daemon the flags describe: a local config dir, or a git repo polled every --interval.
function daemonFor(o: WatchOpts, log: Logger): Daemon {
  const stateDir = resolveStateDir(o.stateDir);
  return new Daemon({
    configDir: o.config,
    ...(o.repo
      ? {
          repo: {
            url: o.repo,
            ref: o.ref,
            ...(o.path ? { subdir: o.path } : {}),
            intervalMs: o.interval,
            budget: budgetFrom(o),
          },
        }
      : {}),
    ...(stateDir ? { stateDir } : {}),
    debounceMs: o.debounce,
    resyncMs: o.resync,
    tick: o.tick,
    stopTimeoutMs: o.stopTimeout,
    parallelism: o.parallelism,
    ...(o.metricsPort !== undefined ? { metricsPort: o.metricsPort } : {}),
    metricsHost: o.metricsHost,
    log,
    hostSettings: hostOptions(o),
    ...(o.lockTimeout !== undefined ? { lockTimeoutMs: o.lockTimeout } : {}),
  });
}

// Resolves (with exit code 0) once SIGTERM or SIGINT has stopped the daemon; SIGHUP reloads everything.
function untilStopped(daemon: Daemon, log: Logger): Promise<number> {
  let stopped: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => (stopped = resolve));
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.once(signal, () => void daemon.stop(signal).then(() => stopped(0)));
  }
  process.on("SIGHUP", () => {
    log.info({}, "SIGHUP: reloading everything");
    void daemon.reloadAll("SIGHUP");
  });
  return done;
}

// watch: run the daemon until a signal stops it.
async function runWatch(o: WatchOpts): Promise<number> {
  // A long-running daemon that is idle most of the time: V8 sizes its heap for memory rather
  // than throughput (a heap close to what is live, not to the start-up peak; at 10,000 cells
  // the resident memory drops by about a third, bench/README.md). Set before the config is read.
  v8.setFlagsFromString("--optimize-for-size");
  const log = createLogger(o.logLevel);
  const daemon = daemonFor(o, log);
  const done = untilStopped(daemon, log);
  await daemon.start();
  return done;
}
