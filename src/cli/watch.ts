import { Command } from "commander";
import { parseDuration } from "../config/durations.js";
import { Daemon } from "../daemon/daemon.js";
import { createLogger } from "../daemon/log.js";
import { resolveStateDir } from "../engine.js";
import { LazarusError } from "../util/errors.js";
import { action, hostOptions, lockTimeoutMs, withCommon, withLockTimeout, type CommonOpts } from "./common.js";
import { budgetFrom, type BudgetOpts } from "./sync.js";

function duration(flag: string, text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined || ms === 0) throw new LazarusError("BAD_FLAG", `${flag} "${text}" is not a duration; use e.g. 30s, 5m or 1h`);
  return ms;
}

export function watchCommand(): Command {
  return withLockTimeout(withCommon(new Command("watch")))
    .description("keep the cells converged: reconcile on every change under cells.d/, on the clock and on process exits")
    .option("--debounce <ms>", "wait this many milliseconds after the last file event before reconciling", "200")
    .option("--resync <duration>", "reconcile every cell this often, to catch drift made behind Lazarus's back", "5m")
    .option("--log-level <level>", "trace, debug, info, warn, error or silent", "info")
    .option("--metrics-port <port>", "serve Prometheus /metrics and /healthz on this port (off by default)")
    .option("--metrics-host <host>", "address to serve metrics on", "127.0.0.1")
    .option("--stop-timeout <ms>", "how long a member has after SIGTERM before SIGKILL", "10000")
    .option("--repo <url|path>", "follow this git repo (GitOps) instead of the local config dir")
    .option("--ref <ref>", "with --repo: the branch or tag to follow", "main")
    .option("--path <subdir>", "with --repo: the directory holding cells.d/ and portfolios/")
    .option("--interval <duration>", "with --repo: how often to poll (with ±10% jitter)", "2m")
    .option("--max-close <n>", "with --repo: hold a commit that would close more cells than this", "5")
    .option("--max-close-percent <p>", "with --repo: hold a commit that would close more than this percentage of the live cells", "25")
    .option("--tick <cron>", "how often time rules and member liveness are checked (node-cron, with seconds)", "*/5 * * * * *")
    .action(
      action(async (o: CommonOpts & BudgetOpts & { repo?: string; ref: string; path?: string; interval: string; debounce: string; resync: string; logLevel: string; metricsPort?: string; metricsHost: string; stopTimeout: string; tick: string }) => {
        const log = createLogger(o.logLevel);
        const stateDir = resolveStateDir(o.stateDir);
        const daemon = new Daemon({
          configDir: o.config,
          ...(o.repo ? { repo: { url: o.repo, ref: o.ref, ...(o.path ? { subdir: o.path } : {}), intervalMs: duration("--interval", o.interval), budget: budgetFrom(o) } } : {}),
          ...(stateDir ? { stateDir } : {}),
          debounceMs: Number(o.debounce),
          resyncMs: duration("--resync", o.resync),
          tick: o.tick,
          stopTimeoutMs: Number(o.stopTimeout),
          ...(o.metricsPort !== undefined ? { metricsPort: Number(o.metricsPort) } : {}),
          metricsHost: o.metricsHost,
          log,
          hostSettings: hostOptions(o),
          ...(o.lockTimeout !== undefined ? { lockTimeoutMs: lockTimeoutMs(o.lockTimeout) } : {}),
        });
        let stopped: (code: number) => void = () => undefined;
        const done = new Promise<number>((resolve) => (stopped = resolve));
        for (const signal of ["SIGTERM", "SIGINT"] as const) {
          process.once(signal, () => void daemon.stop(signal).then(() => stopped(0)));
        }
        process.on("SIGHUP", () => {
          log.info({}, "SIGHUP: reloading everything");
          void daemon.reloadAll("SIGHUP");
        });
        await daemon.start();
        return done;
      }),
    );
}
