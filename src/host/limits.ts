// The operator's ceilings on what a cell file may ask (memory, pids, cpu, logs, how many cells)
// and the limits a member gets when its cell asks for none. Defaults protect the host: a member
// without spec.resources is not unlimited, and no committer can ask for more than a share of it.
import os from "node:os";
import { parseCpu, parseMemory } from "../config/quantity.js";
import { LazarusError } from "../util/errors.js";
import { once } from "../util/memo.js";
import type { Resources } from "../config/types.js";

export interface HostLimits {
  maxMemoryBytes: number; // LAZARUS_MAX_MEMORY: the most one member may ask for
  defaultMemoryBytes: number; // LAZARUS_DEFAULT_MEMORY: a member that asks for none
  maxPids: number; // LAZARUS_MAX_PIDS
  defaultPids: number; // LAZARUS_DEFAULT_PIDS
  maxCpu: number; // LAZARUS_MAX_CPU, cores
  maxLogBytes: number; // LAZARUS_MAX_LOG_SIZE: the largest spec.logs.maxSize
  maxLogKeep: number; // LAZARUS_MAX_LOG_KEEP: the largest spec.logs.keep
  maxCells: number; // LAZARUS_MAX_CELLS: cells per state dir
  // LAZARUS_MAX_BUDGET_TOKENS, LAZARUS_MAX_BUDGET_COST: the most a cell may spend through the
  // model gateway in a day (spec.budget may not allow more; a cell without one gets these)
  maxBudgetTokens?: number;
  maxBudgetCost?: number;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

// The host's memory: read once per process (os.totalmem() reads /proc/meminfo at every call, and
// hostLimits is asked per cell and per member), as it does not change while Lazarus runs.
const hostMemory = once(() => os.totalmem());

// Half the host's memory, in whole MiB: no one member may take the host down.
export function defaultMaxMemory(total = hostMemory()): number {
  return Math.max(64 * MiB, Math.floor(total / 2 / MiB) * MiB);
}

export const LIMIT_DEFAULTS = {
  defaultMemoryBytes: 2 * GiB, // capped at the ceiling on a small host
  maxPids: 8192,
  defaultPids: 1024,
  maxLogBytes: 256 * MiB,
  maxLogKeep: 10,
  maxCells: 1000,
} as const;

const bad = (message: string): LazarusError =>
  new LazarusError("BAD_SETTING", `${message} (docs/configuration.md, host settings)`);

function size(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const text = env[name];
  if (!text) return fallback;
  const bytes = parseMemory(text);
  if (bytes === undefined || bytes < 16 * MiB)
    throw bad(`${name} "${text}" is not a size of at least 16Mi, such as 2Gi`);
  return bytes;
}

function count(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const text = env[name];
  if (!text) return fallback;
  const n = /^\d{1,10}$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= min && n <= max)) throw bad(`${name} "${text}" is not a whole number from ${min} to ${max}`);
  return n;
}

// The limits in force: Lazarus's environment, else the defaults; a default above its ceiling is
// an error rather than silently lowered.
export function hostLimits(env: NodeJS.ProcessEnv = process.env): HostLimits {
  const maxMemoryBytes = size(env, "LAZARUS_MAX_MEMORY", defaultMaxMemory());
  const defaultMemoryBytes = size(
    env,
    "LAZARUS_DEFAULT_MEMORY",
    Math.min(LIMIT_DEFAULTS.defaultMemoryBytes, maxMemoryBytes),
  );
  if (defaultMemoryBytes > maxMemoryBytes)
    throw bad(
      `LAZARUS_DEFAULT_MEMORY (${env.LAZARUS_DEFAULT_MEMORY}) is above LAZARUS_MAX_MEMORY (${env.LAZARUS_MAX_MEMORY ?? `${maxMemoryBytes / MiB}Mi, half this host's memory`})`,
    );
  const maxPids = count(env, "LAZARUS_MAX_PIDS", LIMIT_DEFAULTS.maxPids, 8, 4_194_304);
  const defaultPids = count(env, "LAZARUS_DEFAULT_PIDS", Math.min(LIMIT_DEFAULTS.defaultPids, maxPids), 8, 4_194_304);
  if (defaultPids > maxPids) throw bad(`LAZARUS_DEFAULT_PIDS (${defaultPids}) is above LAZARUS_MAX_PIDS (${maxPids})`);
  const cpuText = env.LAZARUS_MAX_CPU;
  const maxCpu = cpuText
    ? (parseCpu(/^\d+(\.\d+)?$/.test(cpuText) ? Number(cpuText) : cpuText) ?? Number.NaN)
    : Math.max(2, os.availableParallelism());
  if (!(maxCpu > 0)) throw bad(`LAZARUS_MAX_CPU "${cpuText}" is not a number of cores such as 2, 1.5 or 500m`);
  const maxLogText = env.LAZARUS_MAX_LOG_SIZE;
  const maxLogBytes = maxLogText ? (parseMemory(maxLogText) ?? 0) : LIMIT_DEFAULTS.maxLogBytes;
  if (maxLogBytes < 16 * 1024)
    throw bad(`LAZARUS_MAX_LOG_SIZE "${maxLogText}" is not a size of at least 16Ki, such as 256Mi`);
  const maxLogKeep = count(env, "LAZARUS_MAX_LOG_KEEP", LIMIT_DEFAULTS.maxLogKeep, 0, 100);
  const maxCells = count(env, "LAZARUS_MAX_CELLS", LIMIT_DEFAULTS.maxCells, 1, 1_000_000);
  return {
    maxMemoryBytes,
    defaultMemoryBytes,
    maxPids,
    defaultPids,
    maxCpu,
    maxLogBytes,
    maxLogKeep,
    maxCells,
    ...budgetCeilings(env),
  };
}

// LAZARUS_MAX_BUDGET_TOKENS (a whole number) and LAZARUS_MAX_BUDGET_COST (a positive number):
// unset or "none", no ceiling.
function budgetCeilings(env: NodeJS.ProcessEnv): Pick<HostLimits, "maxBudgetTokens" | "maxBudgetCost"> {
  const tokens = env.LAZARUS_MAX_BUDGET_TOKENS;
  const cost = env.LAZARUS_MAX_BUDGET_COST;
  const out: Pick<HostLimits, "maxBudgetTokens" | "maxBudgetCost"> = {};
  if (tokens && !/^none$/i.test(tokens))
    out.maxBudgetTokens = count(env, "LAZARUS_MAX_BUDGET_TOKENS", 0, 1, 9_999_999_999);
  if (cost && !/^none$/i.test(cost)) {
    const n = /^\d+(\.\d+)?$/.test(cost) ? Number(cost) : Number.NaN;
    if (!(n > 0)) throw bad(`LAZARUS_MAX_BUDGET_COST "${cost}" is not a positive number such as 50 or 12.5, or none`);
    out.maxBudgetCost = n;
  }
  return out;
}

// A member's limits: what it declared, else the host's defaults (memory and pids; cpu stays
// unlimited unless declared). For the backends that can enforce them.
export function withDefaults(r: Resources, limits: HostLimits): Resources {
  return { memoryBytes: limits.defaultMemoryBytes, pids: limits.defaultPids, ...r };
}

// A byte count as people write it (2Gi, 512Mi, 1536Ki, 100).
export function formatBytes(n: number): string {
  for (const [unit, size] of [
    ["Ti", 1024 * GiB],
    ["Gi", GiB],
    ["Mi", MiB],
    ["Ki", 1024],
  ] as const)
    if (n >= size && n % size === 0) return `${n / size}${unit}`;
  return String(n);
}
