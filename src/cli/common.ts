// What every command shares: the --config/--state-dir options, output and exit handling.
import type { Command } from "commander";
import { resolveStateDir, type EngineOptions } from "../compute.js";
import { hostSettings, type HostSettings } from "../host/settings.js";
import { colorsFor, type Colors } from "../plan/render/colors.js";
import { reportFailure } from "./failure.js";
import { typedOption } from "./flags.js";
import { DEFAULT_PARALLELISM } from "../apply/parallelism.js";

export interface CommonOpts {
  config: string;
  stateDir?: string;
  secretsDir?: string;
  lockTimeout?: number; // ms; commands that take the state-dir lock (withLockTimeout)
}

export const DEFAULT_LOCK_TIMEOUT = { value: 5000, shown: "5s" };

export function withCommon(cmd: Command): Command {
  return cmd
    .option("-c, --config <dir>", "directory holding cells.d/ and portfolios/", ".")
    .option(
      "-s, --state-dir <dir>",
      "state directory (default $LAZARUS_STATE_DIR, else the spec's /tmp and ~/.lazarus paths)",
    )
    .option(
      "--secrets-dir <dir>",
      "the only directory file credentials are read from (default $LAZARUS_SECRETS_DIR; none: file credentials are refused)",
    );
}

// The operator's settings: flags first, then Lazarus's environment.
export function hostOptions(o: Pick<CommonOpts, "secretsDir">): HostSettings {
  return hostSettings(process.env, o.secretsDir ? { secretsDir: o.secretsDir } : {});
}

// Adds --lock-timeout to a command that changes state (and so takes the state-dir lock).
export function withLockTimeout(cmd: Command): Command {
  return cmd.addOption(
    typedOption(
      "--lock-timeout <duration>",
      "how long to wait while another Lazarus (e.g. lazarus watch) holds the state dir; 0s fails at once",
      { kind: "duration" },
      DEFAULT_LOCK_TIMEOUT,
    ),
  );
}

// Adds --parallelism to a command that applies (apply, sync, watch).
export function withParallelism(cmd: Command): Command {
  return cmd.addOption(
    typedOption(
      "--parallelism <n>",
      "how many cells are applied at once (actions of one cell stay in order; the ledger stays in plan order)",
      { kind: "int", min: 1, max: 256 },
      { value: DEFAULT_PARALLELISM, shown: String(DEFAULT_PARALLELISM) },
    ),
  );
}

// EngineOptions from the shared flags.
export function engineOptions(o: CommonOpts & { now?: string }): EngineOptions {
  const stateDir = resolveStateDir(o.stateDir);
  return {
    configDir: o.config,
    ...(stateDir ? { stateDir } : {}),
    ...(o.now ? { now: o.now } : {}),
    ...(o.lockTimeout !== undefined ? { lockTimeoutMs: o.lockTimeout } : {}),
    hostSettings: hostOptions(o),
  };
}

export const out = (text: string): void => {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
};
export const err = (text: string): void => {
  if (text) process.stderr.write(text.endsWith("\n") ? text : `${text}\n`);
};
export const stdoutColors = (): Colors => colorsFor(process.stdout);
export const stderrColors = (): Colors => colorsFor(process.stderr);

// Run a command body; a failure becomes one line and exit code 1 (see failure.ts).
export function action<A extends unknown[]>(body: (...args: A) => Promise<number>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      process.exitCode = await body(...args);
    } catch (caught) {
      reportFailure(caught);
    }
  };
}
