// What every command shares: the --config/--state-dir options, output and exit handling.
import type { Command } from "commander";
import { resolveStateDir, type EngineOptions } from "../engine.js";
import { hostSettings, type HostSettings } from "../host/settings.js";
import { colorsFor, type Colors } from "../plan/render/colors.js";
import { LazarusError, errorMessage } from "../util/errors.js";

export interface CommonOpts {
  config: string;
  stateDir?: string;
  secretsDir?: string;
}

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

export function engineOptions(o: CommonOpts & { now?: string }): EngineOptions {
  const stateDir = resolveStateDir(o.stateDir);
  return { configDir: o.config, ...(stateDir ? { stateDir } : {}), ...(o.now ? { now: o.now } : {}), hostSettings: hostOptions(o) };
}

export const out = (text: string): void => {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
};
export const err = (text: string): void => {
  if (text) process.stderr.write(text.endsWith("\n") ? text : `${text}\n`);
};
export const stdoutColors = (): Colors => colorsFor(process.stdout);
export const stderrColors = (): Colors => colorsFor(process.stderr);

// Run a command body; a LazarusError becomes a one-line message and exit code 1.
export function action<A extends unknown[]>(body: (...args: A) => Promise<number>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      process.exitCode = await body(...args);
    } catch (e) {
      const c = stderrColors();
      err(c.red(`error: ${errorMessage(e)}`));
      if (!(e instanceof LazarusError) && e instanceof Error && e.stack) err(c.dim(e.stack));
      process.exitCode = 1;
    }
  };
}
