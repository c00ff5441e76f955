// When a cell next needs a look without any file change: the earliest of its time rules.
// Pure: the reconcile step returns it as the cell's requeueAfter (src/daemon/outcome.ts).
import { cronParser } from "../util/cron.js";
import type { DesiredCell } from "../config/types.js";
import type { ObservedName } from "../observe/observe.js";
import { backoffMs } from "../plan/members.js";
import { progressDue } from "../plan/progress.js";
import { parseTime } from "../util/time.js";

const t = parseTime;

// The earliest time rule of the cell (possibly past: something is due now).
export function nextWake(d: DesiredCell | undefined, o: ObservedName | undefined, now: number): number | undefined {
  const times = wakeTimes(d, o, now);
  return times.length > 0 ? Math.min(...times) : undefined;
}

// The earliest time rule still to come after now: what a cell whose due work failed waits for
// besides a change (the failed work itself is not retried by its own past time).
export function nextWakeAfter(
  d: DesiredCell | undefined,
  o: ObservedName | undefined,
  now: number,
): number | undefined {
  const times = wakeTimes(d, o, now).filter((x) => x > now);
  return times.length > 0 ? Math.min(...times) : undefined;
}

function wakeTimes(d: DesiredCell | undefined, o: ObservedName | undefined, now: number): number[] {
  const times: number[] = [];
  const live = o?.live?.record;
  if (live) {
    times.push(t(live.expiresAt));
    if (live.state === "downed")
      times.push(t(live.downedAt) + (d?.downedTimeoutMs ?? live.downedTimeoutMs ?? 3_600_000));
    for (const m of o?.live?.members ?? []) {
      if (m.status === "invited") times.push(t(m.inviteExpiresAt));
      if (m.status === "down") times.push(t(m.downAt) + backoffMs(Math.max(1, m.failures ?? 1)));
      if (m.status === "running" && m.heartbeatMs) times.push((m.heartbeatAt ?? t(m.startedAt)) + m.heartbeatMs + 1);
    }
    const slice = progressDue(live, o?.live); // commit-or-abort: when the slice ends without evidence
    if (slice !== undefined) times.push(slice);
    const schedule = d?.checkpoint.schedule;
    if (schedule) {
      try {
        times.push(
          cronParser()
            .parse(schedule, { currentDate: new Date(now), tz: "UTC" })
            .next()
            .getTime(),
        );
      } catch {
        // validated on load
      }
    }
  }
  const grave = o?.graveyard?.record;
  if (grave) times.push(t(grave.closedAt) + (d?.graceMs ?? grave.graceMs));
  for (const a of o?.archives ?? [])
    if (a.record?.archivedAt) times.push(t(a.record.archivedAt) + (d?.retentionMs ?? a.record.retentionMs));
  return times.filter((x) => !Number.isNaN(x));
}
