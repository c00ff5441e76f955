// What every command shares: the --config/--state-dir options, output and exit handling.
import type { Command } from "commander";
import { parseDuration } from "../config/durations.js";
import { resolveStateDir, type EngineOptions } from "../engine.js";
import { hostSettings, type HostSettings } from "../host/settings.js";
import { colorsFor, type Colors } from "../plan/render/colors.js";
import { LazarusError, errorMessage } from "../util/errors.js";
import { spaceError } from "../util/fsx.js";

export interface CommonOpts {
  config: string;
  stateDir?: string;
  lockTimeout?: string; // commands that take the state-dir lock (withLockTimeout)
  secretsDir?: string;
}

export const DEFAULT_LOCK_TIMEOUT = "5s";

export function withCommon(cmd: Command): Command {
  return cmd
    .option("-c, --config <dir>", "directory holding cells.d/ and portfolios/", ".")
    .option("-s, --state-dir <dir>", "state directory (default $LAZARUS_STATE_DIR, else the spec's /tmp and ~/.lazarus paths)")
    .option("--secrets-dir <dir>", "the only directory file credentials are read from (default $LAZARUS_SECRETS_DIR; none: file credentials are refused)");
}

// The operator's settings: flags first, then Lazarus's environment.
export function hostOptions(o: Pick<CommonOpts, "secretsDir">): HostSettings {
  return hostSettings(process.env, o.secretsDir ? { secretsDir: o.secretsDir } : {});
}

// Adds --lock-timeout to a command that changes state (and so takes the state-dir lock).
export function withLockTimeout(cmd: Command): Command {
  return cmd.option("--lock-timeout <duration>", "how long to wait while another Lazarus (e.g. lazarus watch) holds the state dir; 0s fails at once", DEFAULT_LOCK_TIMEOUT);
}

// Milliseconds of a --lock-timeout value (30s, 2m, 500ms, 0); a bad one is an error naming the flag.
export function lockTimeoutMs(text: string): number {
  const ms = /^\d+ms$/.test(text) ? Number(text.slice(0, -2)) : text === "0" ? 0 : parseDuration(text);
  if (ms === undefined) throw new LazarusError("BAD_FLAG", `--lock-timeout "${text}" is not a duration; use e.g. 0s, 10s or 2m`);
  return ms;
}

// EngineOptions from the shared flags.
export function engineOptions(o: CommonOpts & { now?: string }): EngineOptions {
  const stateDir = resolveStateDir(o.stateDir);
  return { configDir: o.config, ...(stateDir ? { stateDir } : {}), ...(o.now ? { now: o.now } : {}), ...(o.lockTimeout !== undefined ? { lockTimeoutMs: lockTimeoutMs(o.lockTimeout) } : {}), hostSettings: hostOptions(o) };
}

export const out = (text: string): void => {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
};
export const err = (text: string): void => {
  if (text) process.stderr.write(text.endsWith("\n") ? text : `${text}\n`);
};
export const stdoutColors = (): Colors => colorsFor(process.stdout);
export const stderrColors = (): Colors => colorsFor(process.stderr);

// Run a command body; a LazarusError (or a full disk) becomes a one-line message and exit code 1.
export function action<A extends unknown[]>(body: (...args: A) => Promise<number>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      process.exitCode = await body(...args);
    } catch (caught) {
      const e = spaceError(caught, (caught as NodeJS.ErrnoException | undefined)?.path ?? "the state dir");
      const c = stderrColors();
      err(c.red(`error: ${errorMessage(e)}`));
      if (!(e instanceof LazarusError) && e instanceof Error && e.stack) err(c.dim(e.stack));
      process.exitCode = 1;
    }
  };
}
