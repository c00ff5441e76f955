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

export function nextModel(input: NextModelInput): NextModel {
  const p = input.portfolio;
  const attempt = Math.max(1, input.attempt ?? 1);
  const skipped: Skipped[] = [];
  const eligible = (m: ModelSpec): boolean => {
    if (input.needsContext !== undefined && m.contextWindow !== undefined && m.contextWindow < input.needsContext) {
      skipped.push({ model: m.model, why: `context window ${m.contextWindow} < ${input.needsContext} needed` });
      return false;
    }
    if (input.needsTools && m.tools !== true) {
      skipped.push({ model: m.model, why: "no tool use" });
      return false;
    }
    const until = cooldownUntil(m.model, p, input.health ?? [], input.now);
    if (until !== undefined) {
      skipped.push({
        model: m.model,
        why: `in cooldown for ${formatDuration(until - input.now)} (${p.cooldown.allowedFails} failures within ${formatDuration(p.cooldown.windowMs)})`,
      });
      return false;
    }
    return true;
  };
  const chain = p.models.filter(eligible);
  const byName = (names: string[] | undefined): ModelSpec[] | undefined =>
    names
      ?.map((n) => p.models.find((m) => m.model === n))
      .filter((m): m is ModelSpec => m !== undefined && chain.includes(m));
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
  const repeat = (m: ModelSpec, n: number): ModelSpec[] => Array.from({ length: n }, () => m);
  const tooLong = input.retryAfterMs !== undefined && input.retryAfterMs > p.retries.maxRetryAfterMs;
  const tries = TRANSIENT.has(E) && !tooLong ? 1 + p.retries.attempts : 1;
  let seq: ModelSpec[];
  let special = false;
  if (!p.fallbackOn.includes(E)) seq = repeat(first, tries);
  else if (E === "context_window") {
    const explicit = byName(p.contextWindowFallbacks);
    special = explicit !== undefined;
    seq = [
      first,
      ...(explicit ??
        chain
          .slice(1)
          .filter(
            (m) =>
              m.contextWindow === undefined ||
              first.contextWindow === undefined ||
              m.contextWindow > first.contextWindow,
          )),
    ];
  } else if (E === "content_policy") {
    const explicit = byName(p.contentPolicyFallbacks);
    special = explicit !== undefined;
    seq = [first, ...(explicit ?? chain.slice(1))];
  } else seq = chain.flatMap((m) => repeat(m, tries));

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
