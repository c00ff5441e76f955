// plan: a pure function of desired state, observed state and the time. No I/O, no clock.
import type { Diagnostic } from "../config/diagnostics.js";
import { canonicalJson, credentialsDigest, desiredDigest } from "../config/digest.js";
import { assertNever } from "../util/errors.js";
import { formatDuration } from "../config/durations.js";
import type { Desired, DesiredCell, DesiredMember } from "../config/types.js";
import type { CellRecord } from "../cells/record.js";
import type { Observed, ObservedCell, ObservedMember, ObservedName } from "../observe/observe.js";
import type { Action } from "./actions.js";

export interface HeldCell {
  cell: string;
  file: string; // the quarantined file that holds it
}

export interface Plan {
  now: string;
  actions: Action[];
  held: HeldCell[];
  diagnostics: Diagnostic[];
}

// Times in data are full ISO-8601; times in reasons drop zero milliseconds for people.
const iso = (ms: number): string => new Date(ms).toISOString();
const short = (ms: number): string => iso(ms).replace(/\.000Z$/, "Z");
const at = (time: string | undefined): number => (time ? Date.parse(time) : Number.NaN);

export function plan(desired: Desired, observed: Observed, nowMs: number): Plan {
  const actions: Action[] = [];
  const held: HeldCell[] = [];
  const diagnostics: Diagnostic[] = [];
  const names = [...new Set([...desired.cells.keys(), ...observed.cells.keys()])].sort();
  const quarantinedFiles = new Set(desired.quarantined.map((q) => q.file));

  for (const name of names) {
    const d = desired.cells.get(name);
    const o: ObservedName = observed.cells.get(name) ?? { archives: [] };
    if (!d) {
      const holder = holdingFile(name, o, desired, quarantinedFiles);
      if (holder) {
        held.push({ cell: name, file: holder });
        continue;
      }
    }
    const ctx: CellCtx = { name, d, now: nowMs, out: [], diagnostics };
    planName(ctx, o);
    actions.push(...ctx.out);
  }
  return { now: iso(nowMs), actions, held, diagnostics };
}

// The quarantined file that may declare this cell, if any.
function holdingFile(name: string, o: ObservedName, desired: Desired, quarantined: Set<string>): string | undefined {
  const byName = desired.quarantined.find((q) => q.names.includes(name));
  if (byName) return byName.file;
  for (const c of [o.live, o.graveyard, ...o.archives]) {
    if (c?.record && quarantined.has(c.record.sourceFile)) return c.record.sourceFile;
  }
  return undefined;
}

interface CellCtx {
  name: string;
  d: DesiredCell | undefined;
  now: number;
  out: Action[];
  diagnostics: Diagnostic[];
}

const wantsActive = (d: DesiredCell | undefined): d is DesiredCell => d !== undefined && d.state === "active";

function planName(ctx: CellCtx, o: ObservedName): void {
  const { name, d } = ctx;
  for (const c of [o.live, o.graveyard]) {
    if (c && !c.record) {
      ctx.diagnostics.push({
        severity: "error",
        field: name,
        message: `${c.dir} has ${c.unreadable}; Lazarus leaves this cell alone`,
        hint: "restore the file or move the directory out of the state dir",
      });
      return;
    }
  }
  const digest = d ? desiredDigest(d) : undefined;
  // The closed incarnation still on disk, if any, and whether it still sits under cells/.
  let closed: { rec: CellRecord; underCells: boolean } | undefined;
  let justClosed = false;
  const live = o.live?.record ? o.live : undefined;

  if (live) {
    const rec = live.record as CellRecord;
    if (d && (d.project !== rec.project || d.backend !== rec.backend)) {
      const field = d.project !== rec.project ? "project" : "backend";
      ctx.diagnostics.push({
        severity: "error",
        ...d.source,
        field: `spec.${field}`,
        message: `cell ${name} is live with ${field} "${rec[field]}"; ${field} cannot change on a live cell`,
        hint: "set state: closed first, or declare a cell with a new name",
      });
      return;
    }
    switch (rec.state) {
      case "invited":
      case "preparing":
        if (wantsActive(d)) {
          ctx.out.push({ kind: "create", cell: name, desired: d, resume: true, reason: `resume interrupted create (cell was ${rec.state})` });
        } else {
          close(ctx, d ? "state: closed" : "removed from cells.d (create was interrupted)", digest);
          justClosed = true;
        }
        break;
      case "closed":
        closed = { rec, underCells: true };
        break;
      case "archived":
        ctx.diagnostics.push({ severity: "error", field: name, message: `${live.dir} is marked archived but is still under cells/`, hint: "move it out of the state dir" });
        return;
      case "active":
      case "checkpointing":
      case "downed":
        justClosed = !planLive(ctx, live, rec, digest);
        break;
      default:
        return assertNever(rec.state, "cell state");
    }
  }
  if (!closed && !live && o.graveyard?.record) closed = { rec: o.graveyard.record, underCells: false };

  if (closed && !justClosed) {
    const { rec, underCells } = closed;
    const graceMs = d?.graceMs ?? rec.graceMs;
    const graceEnd = at(rec.closedAt) + graceMs;
    const reopen = wantsActive(d) && digest !== rec.closedDigest;
    if (ctx.now < graceEnd && reopen) {
      ctx.out.push({ kind: "resurrect", cell: name, desired: d, reason: `declared active again within grace ${formatDuration(graceMs)} (closed ${rec.closedAt})` });
      return purges(ctx, o);
    }
    if (underCells) close(ctx, "finish interrupted close", rec.closedDigest ?? null);
    if (ctx.now >= graceEnd) {
      ctx.out.push({ kind: "scrub", cell: name, reason: `grace ${formatDuration(graceMs)} ended at ${short(graceEnd)}` });
      if (reopen) ctx.out.push(createAction(name, d, "declared active; the previous cell was scrubbed"));
    }
    if (wantsActive(d) && !reopen) expiredNote(ctx, d);
  } else if (!live && !closed && wantsActive(d)) {
    const newest = [...o.archives].sort((a, b) => at(b.record?.archivedAt) - at(a.record?.archivedAt))[0]?.record;
    if (newest && newest.closedDigest === digest) expiredNote(ctx, d);
    else ctx.out.push(createAction(name, d, o.archives.length > 0 ? "declared active (earlier cells are archived)" : "new cell"));
  }
  // A graveyard entry beside a live cell (left by hand) is still scrubbed on time.
  if (live && o.graveyard?.record && !closed) {
    const rec = o.graveyard.record;
    const graceEnd = at(rec.closedAt) + rec.graceMs;
    if (ctx.now >= graceEnd) ctx.out.push({ kind: "scrub", cell: name, reason: `grace ${formatDuration(rec.graceMs)} ended at ${short(graceEnd)}` });
  }
  purges(ctx, o);
}

function purges(ctx: CellCtx, o: ObservedName): void {
  for (const a of o.archives) {
    const rec = a.record;
    if (!rec?.archivedAt) continue;
    const retentionMs = ctx.d?.retentionMs ?? rec.retentionMs;
    const end = at(rec.archivedAt) + retentionMs;
    if (ctx.now >= end) ctx.out.push({ kind: "purge", cell: ctx.name, dir: a.dir, reason: `retention ${formatDuration(retentionMs)} ended at ${short(end)}` });
  }
}

// A cell that closed (on its ttl, say) stays closed until its declaration changes.
function expiredNote(ctx: CellCtx, d: DesiredCell): void {
  ctx.diagnostics.push({
    severity: "warning",
    ...d.source,
    field: "metadata.name",
    message: `cell ${ctx.name} closed and its declaration has not changed since, so it is not reopened`,
    hint: "raise its ttl or change its declaration to run it again, or remove it",
  });
}

function createAction(name: string, d: DesiredCell, why: string): Action {
  const n = d.members.length;
  return { kind: "create", cell: name, desired: d, resume: false, reason: `${why} (${n} member${n === 1 ? "" : "s"}, ttl ${formatDuration(d.ttlMs)})` };
}

function close(ctx: CellCtx, why: string, digest: string | null | undefined): void {
  ctx.out.push({ kind: "close", cell: ctx.name, closeReason: why, desiredDigest: digest ?? null, reason: why });
}

// A cell in an active state. Returns true when it stays live.
function planLive(ctx: CellCtx, live: ObservedCell, rec: CellRecord, digest: string | undefined): boolean {
  const d = ctx.d;
  if (!d) {
    close(ctx, `removed from cells.d (was declared in ${rec.sourceFile})`, null);
    return false;
  }
  if (d.state === "closed") {
    close(ctx, "state: closed", digest);
    return false;
  }
  const activated = at(rec.activatedAt);
  const expires = d.ttlMs !== rec.ttlMs ? activated + d.ttlMs : at(rec.expiresAt);
  if (ctx.now >= expires) {
    close(ctx, `ttl ${formatDuration(d.ttlMs)} expired at ${short(expires)}`, digest);
    return false;
  }
  if (d.ttlMs !== rec.ttlMs) {
    ctx.out.push({
      kind: "renew",
      cell: ctx.name,
      ttlMs: d.ttlMs,
      expiresAt: iso(expires),
      reason: `ttl ${formatDuration(rec.ttlMs)} → ${formatDuration(d.ttlMs)}: expires ${short(expires)} (was ${rec.expiresAt})`,
    });
  }
  const fields = changedFields(d, rec);
  if (fields.length > 0) ctx.out.push({ kind: "update", cell: ctx.name, desired: d, fields, reason: `${fields.join(", ")} changed` });
  planMembers(ctx, d, live.members);
  return true;
}

function changedFields(d: DesiredCell, rec: CellRecord): string[] {
  const fields: string[] = [];
  if (canonicalJson(d.labels) !== canonicalJson(rec.labels)) fields.push("labels");
  if (d.owner !== rec.owner) fields.push("owner");
  if (d.graceMs !== rec.graceMs) fields.push("grace");
  if (d.retentionMs !== rec.retentionMs) fields.push("retention");
  if (canonicalJson(d.policy) !== canonicalJson(rec.policy)) fields.push("policy");
  if (credentialsDigest(d.credentials) !== rec.credentialsDigest) fields.push("credentials");
  return fields;
}

function sameProcessSpec(dm: DesiredMember, m: ObservedMember): boolean {
  return canonicalJson(dm.command ?? null) === canonicalJson(m.command ?? null) && canonicalJson(dm.env) === canonicalJson(m.env);
}

function planMembers(ctx: CellCtx, d: DesiredCell, members: ObservedMember[]): void {
  const wanted = new Map(d.members.map((m) => [m.identity, m]));
  const have = new Map(members.map((m) => [m.identity, m]));
  const removes: Action[] = [];
  const invites: Action[] = [];
  const restarts: Action[] = [];
  for (const m of members) {
    const dm = wanted.get(m.identity);
    if (!dm) removes.push({ kind: "remove-member", cell: ctx.name, member: m.identity, reason: `member ${m.identity} removed` });
    else if (dm.role !== m.role) {
      removes.push({
        kind: "remove-member",
        cell: ctx.name,
        member: m.identity,
        reason: `role of ${m.identity} changed ${m.role} → ${dm.role}; roles are immutable, so it leaves and is invited again`,
      });
      invites.push({ kind: "invite", cell: ctx.name, member: dm.identity, desiredMember: dm, reason: `${dm.identity} re-invited as ${dm.role}` });
    }
  }
  for (const dm of d.members) {
    const m = have.get(dm.identity);
    if (!m) {
      invites.push({ kind: "invite", cell: ctx.name, member: dm.identity, desiredMember: dm, reason: `member ${dm.identity} added as ${dm.role}` });
      continue;
    }
    if (m.role !== dm.role) continue;
    const why = restartReason(dm, m);
    if (why) restarts.push({ kind: "restart", cell: ctx.name, member: dm.identity, desiredMember: dm, reason: why });
  }
  ctx.out.push(...removes, ...invites, ...restarts);
}

function restartReason(dm: DesiredMember, m: ObservedMember): string | undefined {
  if (!sameProcessSpec(dm, m)) {
    if (!m.command) return `${dm.identity}: command added`;
    if (!dm.command) return `${dm.identity}: command removed`;
    return `${dm.identity}: ${canonicalJson(dm.command) !== canonicalJson(m.command) ? "command" : "env"} changed`;
  }
  if (!dm.command || m.alive) return undefined;
  if (m.status === "starting") return `${dm.identity}: resume interrupted start`;
  if (m.status === "running") return `${dm.identity}: process ${m.pid} is gone`;
  if (m.status === "exited") return `${dm.identity}: process exited`;
  return `${dm.identity}: not running`;
}
