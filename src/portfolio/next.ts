// nextModel: which model an agent should try for this attempt, and why. Pure: the time and the
// cell's model health are passed in.
import { formatDuration } from "../config/durations.js";
import { TRANSIENT, type ErrorClass, type ModelSpec, type Portfolio } from "./types.js";

export type Outcome = "ok" | ErrorClass;

export interface HealthEvent {
  time: number; // ms since the epoch
  model: string;
  outcome: Outcome;
  member?: string;
}

export interface NextModelInput {
  portfolio: Omit<Portfolio, "source">;
  attempt?: number; // 1-based: the attempt about to be made (default 1)
  afterError?: ErrorClass; // how the previous attempt failed
  retryAfterMs?: number; // what the provider asked to wait, if it said
  health?: HealthEvent[]; // the cell's shared model health
  now: number;
  needsContext?: number; // tokens the request needs
  needsTools?: boolean;
}

export interface Skipped {
  model: string;
  why: string;
}

export type NextModel =
  | {
      ok: true;
      model: ModelSpec;
      attempt: number;
      kind: "primary" | "retry" | "fallback" | "special";
      waitMs: number;
      reason: string;
      skipped: Skipped[];
    }
  | { ok: false; attempt: number; reason: string; tried: string[]; skipped: Skipped[] };

// Until when a model is in cooldown: it failed allowedFails times within `window`; it is skipped
// for `duration` after the failure that tipped it over.
export function cooldownUntil(
  model: string,
  p: Pick<Portfolio, "cooldown">,
  health: HealthEvent[],
  now: number,
): number | undefined {
  const fails = health
    .filter((h) => h.model === model && h.outcome !== "ok" && h.time <= now)
    .map((h) => h.time)
    .sort((a, b) => a - b);
  let until: number | undefined;
  for (let i = p.cooldown.allowedFails - 1; i < fails.length; i++) {
    const t = fails[i] as number;
    if (t - (fails[i - p.cooldown.allowedFails + 1] as number) <= p.cooldown.windowMs)
      until = t + p.cooldown.durationMs;
  }
  return until !== undefined && now < until ? until : undefined;
}

// Why a model cannot serve this request now (too small a context window, no tool use, in
// cooldown), or undefined when it can.
function whySkipped(m: ModelSpec, input: NextModelInput): string | undefined {
  const p = input.portfolio;
  if (input.needsContext !== undefined && m.contextWindow !== undefined && m.contextWindow < input.needsContext)
    return `context window ${m.contextWindow} < ${input.needsContext} needed`;
  if (input.needsTools && m.tools !== true) return "no tool use";
  const until = cooldownUntil(m.model, p, input.health ?? [], input.now);
  if (until !== undefined)
    return `in cooldown for ${formatDuration(until - input.now)} (${p.cooldown.allowedFails} failures within ${formatDuration(p.cooldown.windowMs)})`;
  return undefined;
}

const repeat = (m: ModelSpec, n: number): ModelSpec[] => Array.from({ length: n }, () => m);

// The models the attempts go through, in order, when they fail with E: the first model again
// (its retries) when E is not in fallbackOn; first, then its context_window or content_policy
// chain (explicit, or else the eligible models that fit); else every eligible model, each `tries` times.
function attemptSequence(
  p: Omit<Portfolio, "source">,
  chain: ModelSpec[],
  E: ErrorClass,
  tries: number,
): { seq: ModelSpec[]; special: boolean } {
  const first = chain[0] as ModelSpec;
  const byName = (names: string[] | undefined): ModelSpec[] | undefined =>
    names
      ?.map((n) => p.models.find((m) => m.model === n))
      .filter((m): m is ModelSpec => m !== undefined && chain.includes(m));
  if (!p.fallbackOn.includes(E)) return { seq: repeat(first, tries), special: false };
  if (E === "context_window") {
    const explicit = byName(p.contextWindowFallbacks);
    const larger = (m: ModelSpec): boolean =>
      m.contextWindow === undefined || first.contextWindow === undefined || m.contextWindow > first.contextWindow;
    return { seq: [first, ...(explicit ?? chain.slice(1).filter(larger))], special: explicit !== undefined };
  }
  if (E === "content_policy") {
    const explicit = byName(p.contentPolicyFallbacks);
    return { seq: [first, ...(explicit ?? chain.slice(1))], special: explicit !== undefined };
  }
  return { seq: chain.flatMap((m) => repeat(m, tries)), special: false };
}

// An attempt after one that failed with E: the next model of the sequence, a retry of the same
// one (after a backoff, or what the provider asked), or exhausted.
function afterFailure(
  input: NextModelInput,
  chain: ModelSpec[],
  attempt: number,
  E: ErrorClass,
  skipped: Skipped[],
  skipNote: string,
): NextModel {
  const p = input.portfolio;
  const tooLong = input.retryAfterMs !== undefined && input.retryAfterMs > p.retries.maxRetryAfterMs;
  const tries = TRANSIENT.has(E) && !tooLong ? 1 + p.retries.attempts : 1;
  const { seq, special } = attemptSequence(p, chain, E, tries);
  const pick = seq[attempt - 1];
  const tried = [...new Set(seq.slice(0, attempt - 1).map((m) => m.model))];
  if (!pick) {
    const why = p.fallbackOn.includes(E) ? "" : ` (${E} is not in fallbackOn)`;
    return {
      ok: false,
      attempt,
      reason: `portfolio ${p.name} exhausted after ${attempt - 1} attempt(s) ending in ${E}${why}: tried ${tried.join(", ")}${skipNote}`,
      tried,
      skipped,
    };
  }
  const prev = seq[attempt - 2] as ModelSpec;
  if (pick === prev) {
    const k = seq.slice(0, attempt).filter((m) => m === pick).length - 1; // which retry of this model
    const waitMs = Math.max(p.retries.backoffMs * 2 ** (k - 1), input.retryAfterMs ?? 0);
    return {
      ok: true,
      model: pick,
      attempt,
      kind: "retry",
      waitMs,
      reason: `retry ${k} of ${p.retries.attempts} of ${pick.model} after ${E}; wait ${formatDuration(waitMs)}${skipNote}`,
      skipped,
    };
  }
  const kind = special ? "special" : "fallback";
  const why = special
    ? `the ${E} chain`
    : tooLong
      ? `${E} (retry-after ${formatDuration(input.retryAfterMs as number)} is over ${formatDuration(p.retries.maxRetryAfterMs)})`
      : E;
  return {
    ok: true,
    model: pick,
    attempt,
    kind,
    waitMs: 0,
    reason: `fallback from ${prev.model} to ${pick.model} after ${why}${skipNote}`,
    skipped,
  };
}

// The model for this attempt: the first eligible one, else (after a failure) a retry, a fallback or exhausted.
export function nextModel(input: NextModelInput): NextModel {
  const p = input.portfolio;
  const attempt = Math.max(1, input.attempt ?? 1);
  const skipped: Skipped[] = [];
  const chain = p.models.filter((m) => {
    const why = whySkipped(m, input);
    if (why !== undefined) skipped.push({ model: m.model, why });
    return why === undefined;
  });
  const skipNote = skipped.length > 0 ? `; skipped ${skipped.map((s) => `${s.model} (${s.why})`).join(", ")}` : "";
  const first = chain[0];
  if (!first)
    return {
      ok: false,
      attempt,
      reason: `portfolio ${p.name} exhausted: no model is eligible${skipNote}`,
      tried: [],
      skipped,
    };
  const E = input.afterError;
  if (attempt === 1 || !E) {
    const primary = p.models[0] === first;
    return {
      ok: true,
      model: first,
      attempt,
      kind: primary ? "primary" : "fallback",
      waitMs: 0,
      reason: `${primary ? "primary" : "first eligible"} model of portfolio ${p.name}${skipNote}`,
      skipped,
    };
  }
  return afterFailure(input, chain, attempt, E, skipped, skipNote);
}
