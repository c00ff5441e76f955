// Typed command-line values: every numeric, duration, size and cron flag goes through parseFlag,
// so a bad value is refused with the flag's name instead of becoming NaN.
import { InvalidArgumentError, Option } from "commander";
import { createRequire } from "node:module";
import { parseDuration } from "../config/durations.js";
import { parseMemory } from "../config/quantity.js";

export type FlagType =
  | { kind: "int"; min: number; max?: number }
  | { kind: "number"; min: number; max?: number }
  | { kind: "duration"; min?: number; plainMs?: boolean } // plainMs: a bare number is milliseconds (the flag's old meaning)
  | { kind: "size"; min?: number }
  | { kind: "cron" };

const DURATION_EXAMPLES = "e.g. 500ms, 10s, 2m or 1h30m";

// Milliseconds of a duration: 500ms, 10s, 1h30m, "0", or (plainMs) a bare number of milliseconds.
function durationMs(text: string, plainMs: boolean): number | undefined {
  if (/^\d+ms$/.test(text)) return Number(text.slice(0, -2));
  if (/^\d+$/.test(text)) return plainMs || Number(text) === 0 ? Number(text) : undefined;
  return parseDuration(text);
}

// The value of a flag of this type, or a thrown InvalidArgumentError saying what is accepted.
export function parseFlag(type: FlagType, text: string): number | string {
  const t = text.trim();
  switch (type.kind) {
    case "int":
    case "number": {
      const n = (type.kind === "int" ? /^[+]?\d+$/ : /^[+]?(\d+(\.\d*)?|\.\d+)$/).test(t) ? Number(t) : Number.NaN;
      const range = `${type.kind === "int" ? "a whole number" : "a number"} ${type.max === undefined ? `of at least ${type.min}` : `from ${type.min} to ${type.max}`}`;
      if (
        !Number.isFinite(n) ||
        n < type.min ||
        (type.max !== undefined && n > type.max) ||
        !Number.isSafeInteger(Math.floor(n))
      )
        throw new InvalidArgumentError(`"${text}" is not ${range}.`);
      return n;
    }
    case "duration": {
      const ms = durationMs(t, type.plainMs ?? false);
      const accepted = `a duration (${DURATION_EXAMPLES}${type.plainMs ? ", or plain milliseconds" : ""})`;
      if (ms === undefined || !Number.isSafeInteger(ms))
        throw new InvalidArgumentError(`"${text}" is not ${accepted}.`);
      if (ms < (type.min ?? 0)) throw new InvalidArgumentError(`"${text}" is shorter than the ${type.min}ms minimum.`);
      return ms;
    }
    case "size": {
      const bytes = parseMemory(t);
      if (bytes === undefined || bytes < (type.min ?? 1))
        throw new InvalidArgumentError(`"${text}" is not a size (bytes, or e.g. 512Ki, 1Mi, 4Mi).`);
      return bytes;
    }
    case "cron":
      // node-cron only for this flag (watch --tick), so other commands do not load it.
      if (!(createRequire(import.meta.url)("node-cron") as typeof import("node-cron")).default.validate(t))
        throw new InvalidArgumentError(
          `"${text}" is not a cron expression (5 fields, or 6 with seconds first, e.g. "*/5 * * * * *").`,
        );
      return t;
  }
}

// An option whose value is parsed by parseFlag; the default is given parsed, and shown as written.
export function typedOption<T extends number | string>(
  flags: string,
  description: string,
  type: FlagType,
  dflt?: { value: T; shown: string },
): Option {
  const o = new Option(flags, description).argParser((v: string) => parseFlag(type, v) as T);
  return dflt ? o.default(dflt.value, dflt.shown) : o;
}
