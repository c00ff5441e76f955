// The progress clock at a time, from the recorded state and what is observed now. Pure: plan,
// status, the daemon's wake and its metrics all read it from here.
import type { ProgressSpec } from "../config/types.js";
import { parseTime } from "../util/time.js";
import type { ObservedProgress, ProgressClock } from "./types.js";

const latest = (...xs: (string | undefined)[]): number =>
  Math.max(...xs.map((x) => (x === undefined ? Number.NaN : parseTime(x))).filter((x) => !Number.isNaN(x)));

// fallbackStart: when no clock is recorded yet (a cell made before it declared progress, or whose
// progress.json was lost), the clock runs from here (the plan records it; nothing stalls before).
export function progressClock(
  spec: ProgressSpec,
  o: ObservedProgress | undefined,
  now: number,
  fallbackStart: number = now,
): ProgressClock {
  const s = o?.state;
  const fresh = o?.news ?? [];
  const recordedFrom = s ? latest(s.since, s.lastEvidenceAt, s.handledAt) : fallbackStart;
  // Evidence seen now and not yet recorded counts from now: the time Lazarus first sees it.
  const from = fresh.length > 0 ? Math.max(now, recordedFrom) : recordedFrom;
  const lastSeen = s?.lastEvidenceAt ? parseTime(s.lastEvidenceAt) : null;
  const dueAt = from + spec.sliceMs;
  return {
    sliceMs: spec.sliceMs,
    onStall: spec.onStall,
    from,
    lastEvidenceAt: fresh.length > 0 ? now : lastSeen,
    lastEvidence: fresh.length > 0 ? fresh.join(", ") : (s?.lastEvidence ?? null),
    stalledForMs: now >= dueAt ? now - from : null,
    dueAt,
    slices: (s?.slices ?? 0) + (fresh.length > 0 ? 1 : 0),
    stalls: s?.stalls.length ?? 0,
    fresh,
  };
}
