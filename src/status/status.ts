// status: what is really there, built from observed state alone.
import { visible } from "../config/diagnostics.js";
import type { Observed, ObservedCell } from "../observe/observe.js";
import type { Colors } from "../plan/render/colors.js";
import { formatDuration } from "../config/durations.js";
import { formatBytes } from "../config/quantity.js";
import { placeOf } from "../plan/actions.js";
import type { CellSpend } from "../gateway/spend.js";
import { cellWhere, memberWhere, whereText, type CellWhere, type MemberWhere } from "./where.js";
import { progressClock } from "../progress/clock.js";
import type { PushEntry } from "../forge/pushes.js";

export interface MemberStatusView {
  identity: string;
  role: string;
  status: string; // running | exited | joined | starting
  pid: number | null;
  handle?: string; // kubernetes: the namespace/pod it runs as, while alive
  exitCode: number | null; // how it last ended, when it has
  exitReason: string | null; // "oom" when its memory limit killed it (observed or recorded)
  where: MemberWhere | null; // the member's own place where its backend has one (sandbox cgroup, container name)
  // A running executor of a cell judged for progress past its slice: for how long, the last evidence.
  stalled?: { forMs: number; lastEvidenceAt: string | null; lastEvidence: string | null };
  // Stopped by Lazarus for a stall (abort, or while its substitute stands in).
  stoppedForStall?: { at: string; outcome: string };
}

// spec.progress of a live cell as observed at a time (src/progress/clock.ts).
export interface ProgressView {
  slice: string;
  onStall: string;
  lastEvidenceAt: string | null;
  lastEvidence: string | null;
  stalledForMs: number | null; // past its slice: since when the clock runs; else null
  slices: number; // evidence seen
  stalls: number; // stalls handled
  notes: string[]; // why a source gave no evidence
}

export interface CellStatusView {
  name: string;
  state: string;
  place: string;
  backend: string | null; // process, sandbox, container (null: the record is unreadable)
  where: CellWhere | null; // where its members run (null for archived cells: nothing runs)
  replacing?: { from: string; to: string }; // only while a replacement to another backend is unfinished
  project: string | null;
  members: MemberStatusView[];
  expiresAt: string | null;
  closedAt: string | null;
  archivedAt: string | null;
  lastAppliedRevision: string | null;
  frozen: { since: string; pid: number; abandoned: boolean } | null; // frozen for a checkpoint
  // The cell's disk quota (sandbox, container): size, bytes members can still write (null when
  // not observed: not mounted, or not a live cell), whether it is mounted, since when it is full.
  disk?: { bytes: number; avail: number | null; mounted: boolean | null; fullSince: string | null };
  checkpointRefused?: { at: string; error: string }; // the last checkpoint refused for its size, until one is taken
  // What its members spent through the model gateway in its budget's window (else a day), per model.
  models?: CellSpend;
  progress?: ProgressView; // a live cell with spec.progress
  push?: PushView; // the last push of its branch (spec.push), from the outbox (docs/forges.md)
  problem?: string;
}

function progressView(c: ObservedCell, now: number): ProgressView | undefined {
  const spec = c.record?.progress;
  if (!spec || !c.progress || c.place !== "cells") return undefined;
  const k = progressClock(spec, c.progress, now);
  return {
    slice: formatDuration(spec.sliceMs),
    onStall: spec.onStall,
    lastEvidenceAt: k.lastEvidenceAt === null ? null : new Date(k.lastEvidenceAt).toISOString(),
    lastEvidence: k.lastEvidence,
    stalledForMs: c.record?.state === "active" ? k.stalledForMs : null,
    slices: k.slices,
    stalls: k.stalls,
    notes: [...c.progress.notes, ...(c.progress.unreadable ? [c.progress.unreadable] : [])],
  };
}

function view(c: ObservedCell, now: number): CellStatusView {
  const r = c.record;
  const progress = progressView(c, now);
  const stalledMember = (m: ObservedCell["members"][number]): boolean =>
    progress?.stalledForMs != null && (m.role === "executor" || m.role === "substitute") && m.alive && !!m.command;
  return {
    name: c.name,
    state: c.unreachable ? "unknown" : (r?.state ?? "unknown"),
    place: c.place,
    backend: r?.backend ?? null,
    where: r && c.place !== "archive" ? cellWhere(r) : null,
    ...(r?.replacing
      ? {
          replacing: {
            from: placeOf(r.replacing.from.backend, r.replacing.from.container),
            to: r.replacing.to
              ? placeOf(r.replacing.to.backend, r.replacing.to.container)
              : placeOf(r.backend, r.container),
          },
        }
      : {}),
    project: r?.project ?? null,
    members: c.members.map((m) => ({
      identity: m.identity,
      role: m.role,
      status: c.unreachable || m.unverifiable ? "unknown" : m.status === "running" && !m.alive ? "exited" : m.status,
      pid: m.alive || c.unreachable || m.unverifiable ? (m.pid ?? null) : null,
      // where a member without a local process runs (kubernetes: namespace/pod)
      ...(m.alive && m.handle ? { handle: m.handle } : {}),
      exitCode: m.alive || c.unreachable || m.unverifiable ? null : (m.exit?.code ?? m.exitCode ?? null),
      exitReason: m.alive ? null : m.exit?.oom ? "oom" : (m.exitReason ?? null),
      where: r && m.alive ? memberWhere(r, m) : null,
      ...(progress && stalledMember(m)
        ? {
            stalled: {
              forMs: progress.stalledForMs as number,
              lastEvidenceAt: progress.lastEvidenceAt,
              lastEvidence: progress.lastEvidence,
            },
          }
        : {}),
      ...(m.stalled && !m.alive ? { stoppedForStall: m.stalled } : {}),
    })),
    expiresAt: r?.expiresAt ?? null,
    closedAt: r?.closedAt ?? null,
    archivedAt: r?.archivedAt ?? null,
    lastAppliedRevision: r?.lastAppliedRevision ?? null,
    frozen: c.frozen ?? null,
    ...(r?.disk
      ? {
          disk: {
            bytes: r.disk.bytes,
            avail: c.disk?.mounted ? c.disk.avail : null,
            mounted: c.disk ? c.disk.mounted : null,
            fullSince: r.diskFull?.since ?? null,
          },
        }
      : {}),
    ...(r?.checkpointRefused ? { checkpointRefused: r.checkpointRefused } : {}),
    ...(progress ? { progress } : {}),
    ...(c.unreadable ? { problem: c.unreadable } : c.unreachable ? { problem: c.unreachable } : {}),
  };
}

// A cell's last push (spec.push), as its outbox entry says.
export interface PushView {
  branch: string;
  url: string | null;
  status: "pending" | "done" | "failed" | "rejected";
  trigger: string; // the checkpoint it is for, or "close"
  sha: string | null; // the commit last pushed
  at: string; // when the entry last changed
  error: string | null;
}

export function pushView(e: PushEntry): PushView {
  return {
    branch: e.branch,
    url: e.url ?? null,
    status: e.status,
    trigger: e.trigger,
    sha: e.sha ?? null,
    at: e.updatedAt,
    error: e.lastError ?? null,
  };
}

// Each cell's newest push entry, on its first view that is not archived.
export function withPushes(cells: CellStatusView[], entries: PushEntry[]): void {
  const newest = new Map<string, PushEntry>();
  for (const e of entries) {
    const had = newest.get(e.cell);
    if (!had || had.updatedAt < e.updatedAt) newest.set(e.cell, e);
  }
  for (const [name, e] of newest) {
    const c = cells.find((x) => x.name === name && x.state !== "archived");
    if (c) c.push = pushView(e);
  }
}

function pushLine(p: PushView, c: Colors): string {
  const where = `${p.branch} to ${p.url ?? "?"}`;
  const when = p.trigger === "close" ? "at close" : `for checkpoint ${p.trigger}`;
  const last = p.sha ? `; last pushed ${p.sha.slice(0, 12)}` : "";
  switch (p.status) {
    case "done":
      return c.dim(
        `  pushed ${p.sha ? `${p.branch} at ${p.sha.slice(0, 12)}` : `${p.branch}: nothing`} ` +
          `to ${p.url ?? "?"} ${when}`,
      );
    case "pending":
      return c.yellow(`  push of ${where} ${when} waiting to be retried: ${visible(p.error ?? "queued")}${last}`);
    case "rejected":
      return c.red(`  push of ${where} ${when} rejected, not forced: ${visible(p.error ?? "")}${last}`);
    case "failed":
      return c.red(`  push of ${where} ${when} failed: ${visible(p.error ?? "")}${last}`);
  }
}

// now: the time stalls are judged at (spec.progress).
export function statusViews(observed: Observed, only?: string, now: number = Date.now()): CellStatusView[] {
  const out: CellStatusView[] = [];
  for (const [name, o] of [...observed.cells].sort(([a], [b]) => a.localeCompare(b))) {
    if (only && name !== only) continue;
    for (const c of [o.live, o.graveyard, ...o.archives]) if (c) out.push(view(c, now));
  }
  return out;
}

export function renderStatusText(cells: CellStatusView[], nowMs: number, c: Colors): string {
  if (cells.length === 0) return "No cells.";
  const lines: string[] = [];
  for (const cell of cells) {
    const when =
      cell.state === "archived"
        ? `archived ${cell.archivedAt}`
        : cell.state === "closed"
          ? `closed ${cell.closedAt} (graveyard)`
          : cell.expiresAt
            ? `expires ${cell.expiresAt} (${Date.parse(cell.expiresAt) > nowMs ? `in ${formatDuration(Date.parse(cell.expiresAt) - nowMs)}` : "overdue"})`
            : "";
    const state =
      cell.state === "active"
        ? c.green(cell.state)
        : cell.state === "closed" || cell.state === "archived"
          ? c.dim(cell.state)
          : c.yellow(cell.state);
    lines.push(`${c.bold(cell.name)}  ${state}  ${when}${cell.problem ? c.red(`  ${visible(cell.problem)}`) : ""}`);
    if (cell.backend && cell.where) lines.push(c.dim(`  ${whereText(cell.backend, cell.where)}`));
    if (cell.replacing)
      lines.push(
        c.yellow(`  replacing ${cell.replacing.from} → ${cell.replacing.to}: unfinished; the next apply finishes it`),
      );
    if (cell.frozen) {
      lines.push(
        cell.frozen.abandoned
          ? c.red(
              `  frozen since ${cell.frozen.since} by a checkpoint whose process (pid ${cell.frozen.pid}) died; the next apply, checkpoint or watch thaws it`,
            )
          : c.yellow(`  frozen since ${cell.frozen.since} for a checkpoint (pid ${cell.frozen.pid})`),
      );
    }
    if (cell.disk) lines.push(diskLine(cell.disk, c));
    if (cell.models) lines.push(...modelLines(cell.models, c));
    if (cell.progress) lines.push(progressLine(cell.progress, c));
    if (cell.push) lines.push(pushLine(cell.push, c));
    if (cell.checkpointRefused)
      lines.push(c.red(`  last checkpoint refused ${cell.checkpointRefused.at}: ${cell.checkpointRefused.error}`));
    const w = Math.max(0, ...cell.members.map((m) => m.identity.length));
    for (const m of cell.members) {
      const st = m.status === "running" ? c.green(m.status) : m.status === "exited" ? c.red(m.status) : m.status;
      const ended =
        m.exitReason === "oom"
          ? `  OOM-killed (memory limit)`
          : m.exitCode !== null && m.status !== "running"
            ? `  exit ${m.exitCode}`
            : "";
      const at = m.where?.container
        ? `  container ${m.where.container}`
        : m.where?.pod
          ? `  pod ${m.where.pod}`
          : m.handle
            ? `  pod ${m.handle}`
            : "";
      const stall = m.stalled
        ? c.red(`  stalled ${formatDuration(m.stalled.forMs)}`)
        : m.stoppedForStall
          ? c.yellow(`  stopped for no progress (${m.stoppedForStall.outcome} ${m.stoppedForStall.at})`)
          : "";
      lines.push(
        `  ${m.identity.padEnd(w)}  ${m.role.padEnd(10)}  ${st}${m.pid ? `  pid ${m.pid}` : ""}${at}${ended}${stall}`,
      );
    }
  }
  return lines.join("\n");
}

// "  models, last 1h (budget 2000 tokens per 1h): 15 tokens, cost 0.0001", then one line per model.
function modelLines(s: CellSpend, c: Colors): string[] {
  const b = s.budget;
  const limit = b
    ? ` (budget ${[b.tokens !== undefined ? `${b.tokens} tokens` : "", b.cost !== undefined ? `cost ${b.cost}` : ""].filter(Boolean).join(" and ")} per ${formatDuration(b.periodMs)})`
    : "";
  const head = `  models, last ${formatDuration(s.windowMs)}${limit}: ${s.tokens} tokens, cost ${s.cost.toFixed(4)}`;
  return [
    c.dim(head),
    ...s.byModel.map((m) =>
      c.dim(
        `    ${visible(m.model)}  ${m.calls} call${m.calls === 1 ? "" : "s"}, ${m.tokensIn} in, ${m.tokensOut} out, cost ${m.cost.toFixed(4)}`,
      ),
    ),
  ];
}

// "  progress: stalled for 4m (slice 3m, onStall restart); last evidence … (commit …); 3 slices, 1 stall".
function progressLine(p: ProgressView, c: Colors): string {
  const last = p.lastEvidenceAt
    ? `last evidence ${p.lastEvidenceAt} (${visible(p.lastEvidence ?? "?")})`
    : "no evidence yet";
  const counts = `${p.slices} slice${p.slices === 1 ? "" : "s"}, ${p.stalls} stall${p.stalls === 1 ? "" : "s"}`;
  const head = `  progress (slice ${p.slice}, onStall ${p.onStall})`;
  const notes = p.notes.length > 0 ? `; ${visible(p.notes.join("; "))}` : "";
  if (p.stalledForMs !== null)
    return c.red(`${head}: stalled for ${formatDuration(p.stalledForMs)}; ${last}; ${counts}${notes}`);
  return c.dim(`${head}: ${last}; ${counts}${notes}`);
}

// "  disk 1Gi: 312Mi free", "  disk 1Gi: quota reached since …", "  disk 1Gi: image not mounted …".
function diskLine(d: NonNullable<CellStatusView["disk"]>, c: Colors): string {
  const head = `  disk ${formatBytes(d.bytes)}`;
  if (d.mounted === false) return c.red(`${head}: image not mounted; the next apply mounts it before members start`);
  if (d.fullSince)
    return c.red(
      `${head}: quota reached since ${d.fullSince} (members get ENOSPC)${d.avail !== null ? `, ${formatBytes(d.avail)} free` : ""}`,
    );
  return c.dim(d.avail !== null ? `${head}: ${formatBytes(d.avail)} free` : head);
}
