// How a failed command ends: a LazarusError (or a full disk) is one "error: …" line; anything else
// is one "internal error: …" line, with the stack only under --debug or LAZARUS_DEBUG=1. Exit 1.
import { colorsFor } from "../plan/render/colors.js";
import { LazarusError, errorMessage } from "../util/errors.js";
import { spaceError } from "../util/fsx.js";

export const EXIT_FAILURE = 1;

// Whether --debug (or LAZARUS_DEBUG=1) asked for stacks.
export function debugEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.LAZARUS_DEBUG === "1" || env.LAZARUS_DEBUG === "true";
}

// The lines to print for a failure.
export function failureLines(caught: unknown, debug = debugEnabled()): string[] {
  const e = spaceError(caught, (caught as NodeJS.ErrnoException | undefined)?.path ?? "the state dir");
  if (e instanceof LazarusError) return [`error: ${errorMessage(e)}`, ...(debug && e.stack ? [e.stack] : [])];
  const message = errorMessage(e).split("\n")[0] ?? "";
  if (debug) return [`internal error: ${message}`, e instanceof Error && e.stack ? e.stack : String(e)];
  return [`internal error: ${message} (run with --debug for the stack)`];
}

// Print a failure on stderr and set the exit code.
export function reportFailure(caught: unknown): void {
  const c = colorsFor(process.stderr);
  const [first, ...rest] = failureLines(caught);
  process.stderr.write(`${c.red(first ?? "error")}\n`);
  for (const line of rest) process.stderr.write(`${c.dim(line)}\n`);
  process.exitCode = EXIT_FAILURE;
}
