// The read-only half of the engine: load → observe → plan, with no lock and no change. What plan
// and status run; engine.ts re-exports it and adds the half that changes state (the lock, apply,
// checkpoints), whose modules (apply, every backend) a plan should not pay to load.
import { readdir } from "node:fs/promises";
import path from "node:path";
import { statePaths, type StatePaths } from "./cells/layout.js";
import { loadConfig } from "./config/load.js";
import type { Diagnostic } from "./config/diagnostics.js";
import type { Desired } from "./config/types.js";
import { lastRecordedTime } from "./ledger/ledger.js";
import { observe, observeNames, type Observed } from "./observe/observe.js";
import { plan, type Plan } from "./plan/plan.js";
import { hostSettings, type HostSettings } from "./host/settings.js";
import { hostLimits } from "./host/limits.js";
import { LazarusError } from "./util/errors.js";
import { credentialDigestKey } from "./host/digest-key.js";
import type { CredentialContext } from "./host/secrets.js";

export interface EngineOptions {
  configDir: string;
  stateDir?: string;
  now?: string; // ISO-8601; default the clock
  stopTimeoutMs?: number;
  hostEnv?: NodeJS.ProcessEnv;
  hostSettings?: HostSettings; // the operator's (--secrets-dir, LAZARUS_*); default: from hostEnv
  revision?: string; // the config commit being applied (GitOps)
  loaded?: { desired: Desired; diagnostics: Diagnostic[] }; // configDir, already loaded by the caller
  lockTimeoutMs?: number; // how long to wait for another holder of the state-dir lock (default 0: fail at once)
  parallelism?: number; // cells applied at once (default DEFAULT_PARALLELISM)
  // plan (and so apply) only these cells, as the daemon's incremental path does; default every cell
  only?: ReadonlySet<string>;
}

export interface PlanOutcome {
  paths: StatePaths;
  desired: Desired;
  observed: Observed;
  plan: Plan;
  diagnostics: Diagnostic[]; // load and plan diagnostics together
}

export function resolveStateDir(
  stateDir: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  return stateDir ?? (env.LAZARUS_STATE_DIR || undefined);
}

// The time to act at: --now, else the clock. Never earlier than the last recorded time when --now
// is given; without --now, a ledger time in the future is refused when mutating ("mutate") and
// only warned about when showing ("show": plan, status), which then use the clock. "hold" (the
// daemon): the clock as well, with heldUntil, the ledger's time ahead of it, until which the
// caller acts on no time rule and records nothing earlier than it.
export async function resolveNow(
  paths: StatePaths,
  requested: string | undefined,
  mode: "mutate" | "show" | "hold" = "mutate",
): Promise<{ now: number; diagnostics: Diagnostic[]; heldUntil?: number }> {
  let now = Date.now();
  if (requested !== undefined) {
    now = Date.parse(requested);
    if (Number.isNaN(now))
      throw new LazarusError("BAD_TIME", `--now "${requested}" is not an ISO-8601 time; use e.g. 2026-11-25T18:00:00Z`);
  }
  const last = await lastRecordedTime(paths.ledgerHead);
  const lastMs = last ? Date.parse(last) : Number.NaN;
  if (Number.isNaN(lastMs) || now >= lastMs) return { now, diagnostics: [] };
  if (requested !== undefined) {
    return {
      now: lastMs,
      diagnostics: [
        {
          severity: "warning",
          message: `--now ${requested} is earlier than the last recorded time ${last}; planning at ${last}`,
          hint: "time never runs backwards in a state dir",
        },
      ],
    };
  }
  const why = `the ledger's last recorded time ${last} is in the future (the clock says ${new Date(now).toISOString()}); an earlier command was run with a future --now`;
  const hint = `pass --now ${last} (or later) explicitly to act at that time, or wait until the clock passes ${last}`;
  if (mode === "mutate") throw new LazarusError("FUTURE_LEDGER", `refusing to change state: ${why}; ${hint}`);
  if (mode === "hold")
    return {
      now,
      heldUntil: lastMs,
      diagnostics: [
        {
          severity: "warning",
          message: `${why}; members are supervised, time rules wait until the clock passes it`,
          hint,
        },
      ],
    };
  return { now, diagnostics: [{ severity: "warning", message: `${why}; showing as of the clock`, hint }] };
}

// Where credentials come from for loading: the operator's settings and environment, and the state
// dir's digest key when it exists (plan never creates it).
export async function credentialContext(
  opts: Pick<EngineOptions, "hostEnv" | "hostSettings">,
  paths: StatePaths,
): Promise<CredentialContext> {
  const hostEnv = opts.hostEnv ?? process.env;
  const digestKey = await credentialDigestKey(path.dirname(paths.ledger), false);
  return { host: opts.hostSettings ?? hostSettings(hostEnv), hostEnv, ...(digestKey ? { digestKey } : {}) };
}

// Load, observe and plan (no lock, no change).
export async function computePlan(opts: EngineOptions): Promise<PlanOutcome> {
  const paths = statePaths(opts.stateDir);
  const { desired, diagnostics: loadDiags } =
    opts.loaded ?? (await loadConfig(opts.configDir, await credentialContext(opts, paths)));
  const { now, diagnostics: timeDiags } = await resolveNow(paths, opts.now, "show"); // a mutating caller checked under its lock
  const { observed, plan: p } = await observeAndPlan(paths, desired, now, opts.only);
  return { paths, desired, observed, plan: p, diagnostics: [...loadDiags, ...timeDiags, ...p.diagnostics] };
}

// Observe (every cell, or only these) and plan at now: the step every reconcile shares.
export async function observeAndPlan(
  paths: StatePaths,
  desired: Desired,
  now: number,
  only?: ReadonlySet<string>,
  maxCells = hostLimits(process.env).maxCells,
): Promise<{ observed: Observed; plan: Plan }> {
  const observed = only ? await observeNames(paths, only) : await observe(paths);
  const live = new Set((await readdir(paths.cells).catch(() => [] as string[])).filter((n) => !n.startsWith(".")));
  return { observed, plan: plan(desired, observed, now, only, { maxCells, live }) };
}
