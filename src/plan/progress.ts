// Commit-or-abort (spec.progress), planned for one live cell: evidence not yet recorded is recorded
// (the time Lazarus first saw it), and running executors whose cell shows no evidence for a slice
// are stalled and handled as onStall says. Pure, like the rest of the planner.
import type { Diagnostic } from "../config/diagnostics.js";
import type { DesiredCell, DesiredMember } from "../config/types.js";
import type { CellRecord } from "../cells/record.js";
import { formatDuration } from "../config/durations.js";
import type { ObservedCell, ObservedCheckpoint } from "../observe/observe.js";
import { progressClock } from "../progress/clock.js";
import { iso, parseTime, short } from "../util/time.js";
import type { Action, Pending } from "./actions.js";

export interface ProgressCtx {
  name: string;
  now: number;
  out: Action[];
  pending: Pending[];
  diagnostics: Diagnostic[];
}

const isExecutorRole = (role: string): boolean => role === "executor" || role === "substitute";

// busy: members this plan already acts on (restarted, found down, removed): not judged this round.
export function planProgress(
  ctx: ProgressCtx,
  d: DesiredCell,
  rec: CellRecord,
  live: ObservedCell,
  sources: ObservedCheckpoint[],
  busy: ReadonlySet<string>,
): void {
  const spec = d.progress;
  const o = live.progress;
  if (!spec || !o) return; // not judged (or recorded only at the update that declares it)
  for (const note of [...o.notes, ...(o.unreadable ? [`${o.unreadable}; the clock starts again`] : [])])
    ctx.diagnostics.push({
      severity: "warning",
      field: `${ctx.name} spec.progress`,
      message: `progress of cell ${ctx.name}: ${note}`,
      hint: "only a new commit in project/ (a real .git directory) or a new or changed file under shared/artifacts/ counts",
    });
  if (!o.state) {
    ctx.out.push({ kind: "progress", cell: ctx.name, evidence: [], start: true, reason: "progress clock starts" });
    return;
  }
  const clock = progressClock(spec, o, ctx.now);
  if (clock.fresh.length > 0) {
    ctx.out.push({
      kind: "progress",
      cell: ctx.name,
      evidence: clock.fresh,
      start: false,
      reason: `progress: ${clock.fresh.slice(0, 3).join(", ")}${clock.fresh.length > 3 ? ` and ${clock.fresh.length - 3} more` : ""}`,
    });
    return;
  }
  if (rec.state !== "active") return;
  const running = live.members
    .filter((m) => isExecutorRole(m.role) && m.command && m.alive && m.status === "running" && !busy.has(m.identity))
    .map((m) => m.identity);
  if (running.length === 0) return;
  if (clock.stalledForMs === null) {
    ctx.pending.push({
      cell: ctx.name,
      reason: `stalls at ${short(clock.dueAt)} without progress (slice ${formatDuration(spec.sliceMs)}, onStall ${spec.onStall})`,
    });
    return;
  }
  const last = sources[sources.length - 1];
  const subs = spec.onStall === "substitute" ? substitutesFor(d, rec, running, last) : [];
  const lastWords =
    clock.lastEvidenceAt === null
      ? "no evidence yet"
      : `last evidence ${short(clock.lastEvidenceAt)}: ${clock.lastEvidence ?? "?"}`;
  ctx.out.push({
    kind: "stall",
    cell: ctx.name,
    onStall: spec.onStall,
    members: running,
    lastEvidenceAt: clock.lastEvidenceAt === null ? null : iso(clock.lastEvidenceAt),
    lastEvidence: clock.lastEvidence,
    stalledForMs: clock.stalledForMs,
    slices: clock.slices,
    ...(spec.onStall === "restart" && last ? { restore: last.file } : {}),
    substitutes: subs,
    inviteTtlMs: d.inviteTtlMs,
    reason: `no progress for ${formatDuration(clock.stalledForMs)} (slice ${formatDuration(spec.sliceMs)}; ${lastWords}; ${clock.slices} slice${clock.slices === 1 ? "" : "s"} completed): ${handling(spec.onStall, running, subs, last)}`,
  });
}

// Each stalled executor's declared substitute, when it has one not already in the cell.
function substitutesFor(
  d: DesiredCell,
  rec: CellRecord,
  running: string[],
  last: ObservedCheckpoint | undefined,
): { member: string; desiredMember: DesiredMember; replaces: string; restore?: string }[] {
  const inCell = new Set(rec.members.map((m) => m.identity));
  const out: { member: string; desiredMember: DesiredMember; replaces: string; restore?: string }[] = [];
  for (const id of running) {
    const s = d.members.find((m) => m.role === "substitute" && m.replaces === id && !inCell.has(m.identity));
    if (s) out.push({ member: s.identity, desiredMember: s, replaces: id, ...(last ? { restore: last.file } : {}) });
  }
  return out;
}

function handling(
  onStall: string,
  running: string[],
  subs: { member: string; replaces: string }[],
  last: ObservedCheckpoint | undefined,
): string {
  const who = running.join(", ");
  switch (onStall) {
    case "restart":
      return `restart ${who} ${last ? `from checkpoint ${last.name}` : "(no checkpoint: as they are)"}`;
    case "substitute": {
      const replaced = new Set(subs.map((s) => s.replaces));
      const rest = running.filter((r) => !replaced.has(r));
      return [
        ...subs.map((s) => `stop ${s.replaces}, summon substitute ${s.member}`),
        ...(rest.length ? [`restart ${rest.join(", ")} (no substitute to summon)`] : []),
      ].join("; ");
    }
    case "abort":
      return `abort: stop ${who} (recorded in the ledger and the close log)`;
    default:
      return `notify only (${who} ${running.length === 1 ? "keeps" : "keep"} running)`;
  }
}

// When the cell's slice next ends without evidence (for the daemon's wake), or undefined.
export function progressDue(rec: CellRecord | undefined, live: ObservedCell | undefined): number | undefined {
  const spec = rec?.progress;
  if (!spec || !live?.progress?.state) return undefined;
  return progressClock(spec, { ...live.progress, news: [] }, parseTime(live.progress.state.since)).dueAt;
}
