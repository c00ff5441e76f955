// plan: a pure function of desired state, observed state and the time. No I/O, no clock.
import type { Diagnostic } from "../config/diagnostics.js";
import { desiredDigest } from "../config/digest.js";
import { egressSummary } from "./egress.js";
import { assertNever } from "../util/errors.js";
import { iso, parseTime, short } from "../util/time.js";
import { formatDuration } from "../config/durations.js";
import type { Desired, DesiredCell } from "../config/types.js";
import type { CellRecord } from "../cells/record.js";
import { cellChanges, replacementForces } from "../cells/fields.js";
import type { Observed, ObservedCell, ObservedCheckpoint, ObservedName } from "../observe/observe.js";
import { placeOf, type Action, type Pending } from "./actions.js";
import { findBackend } from "../backends/table.js";
import { isUnknown, planMembers } from "./members.js";
import { planProgress } from "./progress.js";
import { cronParser } from "../util/cron.js";
import { formatBytes } from "../config/quantity.js";

export interface HeldCell {
  cell: string;
  file: string; // the quarantined file that holds it
  new?: true; // it is nowhere on disk: it is not created until its file loads
}

export interface Plan {
  now: string;
  actions: Action[];
  held: HeldCell[];
  unnamedFiles: string[]; // quarantined files that hold no cell a plan can name (say so, not "no changes")
  pending: Pending[];
  diagnostics: Diagnostic[];
}

const at = parseTime;

// The operator's ceiling on cells per state dir (LAZARUS_MAX_CELLS), and the names under cells/
// now (all of them, even when only some are planned).
export interface CellCap {
  maxCells: number;
  live: ReadonlySet<string>;
}

// only: plan just these cells (the daemon's incremental path); every other cell is left out.
export function plan(
  desired: Desired,
  observed: Observed,
  nowMs: number,
  only?: ReadonlySet<string>,
  cap?: CellCap,
): Plan {
  const actions: Action[] = [];
  const pending: Pending[] = [];
  const held: HeldCell[] = [];
  const diagnostics: Diagnostic[] = [];
  // A name only a quarantined file declares is held too: planned as nothing, but never silently.
  const names = only
    ? [...only].sort()
    : [
        ...new Set([...desired.cells.keys(), ...observed.cells.keys(), ...desired.quarantined.flatMap((q) => q.names)]),
      ].sort();
  const quarantinedFiles = new Set(desired.quarantined.map((q) => q.file));

  for (const name of names) {
    const d = desired.cells.get(name);
    const o: ObservedName = observed.cells.get(name) ?? { archives: [] };
    if (!d) {
      const holder = holdingFile(name, o, desired, quarantinedFiles);
      if (holder) {
        held.push({
          cell: name,
          file: holder,
          ...(!o.live && !o.graveyard && o.archives.length === 0 ? { new: true as const } : {}),
        });
        continue;
      }
    }
    const ctx: CellCtx = { name, d, now: nowMs, out: [], pending, diagnostics, portfoliosHeld: desired.portfoliosHeld };
    planName(ctx, o);
    actions.push(...ctx.out);
  }
  return {
    now: iso(nowMs),
    actions: cap ? capNewCells(actions, cap, pending, diagnostics) : actions,
    held,
    unnamedFiles: unnamedFiles(desired, observed),
    pending,
    diagnostics,
  };
}

// New cells beyond the ceiling are held (in name order, so the same ones each time): not created,
// pending with a diagnostic; nothing that exists is touched.
function capNewCells(actions: Action[], cap: CellCap, pending: Pending[], diagnostics: Diagnostic[]): Action[] {
  let room = cap.maxCells - cap.live.size;
  const excess = new Set<string>();
  for (const a of actions) {
    if (a.kind !== "create" || a.resume || cap.live.has(a.cell)) continue;
    if (room > 0) room--;
    else excess.add(a.cell);
  }
  for (const a of actions) {
    if (a.kind !== "create" || !excess.has(a.cell)) continue;
    pending.push({
      cell: a.cell,
      reason: `held: this state dir holds ${cap.live.size} cells, and at most ${cap.maxCells} (LAZARUS_MAX_CELLS)`,
    });
    diagnostics.push({
      severity: "warning",
      ...a.desired.source,
      field: "metadata.name",
      message: `cell ${a.cell} is not created: the state dir is at its ceiling of ${cap.maxCells} cells (LAZARUS_MAX_CELLS)`,
      hint: "close cells you no longer need, or the operator raises LAZARUS_MAX_CELLS; the cell is created once there is room",
    });
  }
  return excess.size ? actions.filter((a) => !excess.has(a.cell)) : actions;
}

// Quarantined files from which no cell name was salvaged and that no cell on disk came from.
function unnamedFiles(desired: Desired, observed: Observed): string[] {
  const nameless = desired.quarantined.filter((q) => q.names.length === 0);
  if (nameless.length === 0) return [];
  const sources = new Set<string>();
  for (const o of observed.cells.values())
    for (const c of [o.live, o.graveyard, ...o.archives]) if (c?.record) sources.add(c.record.sourceFile);
  return nameless.map((q) => q.file).filter((f) => !sources.has(f));
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
  pending: Pending[];
  diagnostics: Diagnostic[];
  portfoliosHeld: boolean;
}

const wantsActive = (d: DesiredCell | undefined): d is DesiredCell => d !== undefined && d.state === "active";

// A scrub killed after it moved the entry aside is finished whatever else the name holds, last:
// apply skips a cell's later actions after one fails, and a release that keeps failing (its host
// gone, its backend unconfigured, its record unreadable) must hold nothing else of the name.
function planName(ctx: CellCtx, o: ObservedName): void {
  planNameNow(ctx, o);
  if (o.scrubbing?.length)
    ctx.out.push({
      kind: "scrub",
      cell: ctx.name,
      interrupted: true,
      reason: `finish interrupted scrub (${o.scrubbing.join(", ")}: release, then delete)`,
    });
}

// Changes the live cell's backend cannot follow: errors at the cell; the cell keeps what it has.
function refuseUnfollowed(ctx: CellCtx, d: DesiredCell, rec: CellRecord): void {
  if (d.backend !== rec.backend) return;
  for (const r of findBackend(rec.backend)?.unfollowed?.(d, rec) ?? [])
    ctx.diagnostics.push({ severity: "error", ...d.source, ...r });
}

// The name's diagnostic when its live or graveyard record cannot be read: the cell is left alone.
function unreadableRecord(ctx: CellCtx, o: ObservedName): boolean {
  for (const c of [o.live, o.graveyard]) {
    if (c && !c.record) {
      ctx.diagnostics.push({
        severity: "error",
        field: ctx.name,
        message: `${c.dir} has ${c.unreadable}; Lazarus leaves this cell alone`,
        hint: "restore the file or move the directory out of the state dir",
      });
      return true;
    }
  }
  return false;
}

// A remote cell whose host does not answer is unknown: nothing is closed, restarted or
// re-created elsewhere (its members may well be running) until the host answers again. True when held.
function heldUnreachable(ctx: CellCtx, o: ObservedName): boolean {
  const { name } = ctx;
  const away = [o.live, o.graveyard].find((c) => c?.unreachable);
  if (!away) return false;
  ctx.pending.push({ cell: name, reason: `held while its state is unknown: ${away.unreachable}` });
  ctx.diagnostics.push({
    severity: "warning",
    field: name,
    message: `cell ${name} is held: ${away.unreachable}`,
    hint: "bring the host back or fix the connection (host key, identity file); Lazarus acts on the cell once the host answers",
  });
  return true;
}

// A live cell's project cannot change: an error, and the declaration planned with the live
// project. The live cell keeps its project (and, then, its backend: no replacement either); every
// other rule (TTL, closing, members) still applies. The digest recorded on close stays the
// declared one. A change of backend alone is a replacement (see planLive).
function keepLiveProject(ctx: CellCtx, d: DesiredCell, liveRec: CellRecord): DesiredCell {
  if (d.project === liveRec.project) return d;
  ctx.diagnostics.push({
    severity: "error",
    ...d.source,
    field: "spec.project",
    message: `cell ${ctx.name} is live with project "${liveRec.project}"; project cannot change on a live cell`,
    hint: "set state: closed first, or declare a cell with a new name",
  });
  return {
    ...d,
    project: liveRec.project,
    backend: liveRec.backend,
    ...(liveRec.container ? { container: liveRec.container } : {}),
  };
}

// The declaration's digest, computed only when a close records it or a closed cell is compared.
function lazyDigest(declared: DesiredCell | undefined): () => string | undefined {
  let digested: { value: string | undefined } | undefined;
  return () => (digested ??= { value: declared ? desiredDigest(declared) : undefined }).value;
}

// The closed incarnation still on disk, and whether it still sits under cells/.
interface ClosedCell {
  rec: CellRecord;
  underCells: boolean;
}

// What the live record's state leaves to plan: the closed incarnation under cells/, or whether
// this plan closes the cell. Undefined: the name is left alone.
interface LiveOutcome {
  closed?: ClosedCell;
  justClosed: boolean;
}

function planNameNow(ctx: CellCtx, o: ObservedName): void {
  if (unreadableRecord(ctx, o) || heldUnreachable(ctx, o)) return;
  const declared = ctx.d;
  const liveRec = o.live?.record;
  if (ctx.d && liveRec) {
    ctx.d = keepLiveProject(ctx, ctx.d, liveRec);
    refuseUnfollowed(ctx, ctx.d, liveRec);
  }
  const d = ctx.d;
  const digest = lazyDigest(declared);
  const live = o.live?.record ? o.live : undefined;
  const outcome = live ? planLiveRecord(ctx, live, live.record as CellRecord, digest) : { justClosed: false };
  if (!outcome) return;
  const closed =
    outcome.closed ?? (!live && o.graveyard?.record ? { rec: o.graveyard.record, underCells: false } : undefined);
  if (closed && !outcome.justClosed) planClosed(ctx, o, closed, live, digest);
  else if (!live && !closed && wantsActive(d)) planAbsent(ctx, o, d, digest);
  if (live && !closed) scrubStrayGraveyard(ctx, o);
  purges(ctx, o);
}

// The live record by its state: resume or abandon a create, a closed cell, a live one.
function planLiveRecord(
  ctx: CellCtx,
  live: ObservedCell,
  rec: CellRecord,
  digest: () => string | undefined,
): LiveOutcome | undefined {
  switch (rec.state) {
    case "invited":
    case "preparing":
      return { justClosed: planInterruptedCreate(ctx, live, rec, digest) };
    case "closed":
      return { closed: { rec, underCells: true }, justClosed: false };
    case "archived":
      ctx.diagnostics.push({
        severity: "error",
        field: ctx.name,
        message: `${live.dir} is marked archived but is still under cells/`,
        hint: "move it out of the state dir",
      });
      return undefined;
    case "active":
    case "checkpointing":
    case "downed": {
      const justClosed = !planLive(ctx, live, rec, digest);
      if (justClosed) scrubAtOnce(ctx);
      return { justClosed };
    }
    default:
      return assertNever(rec.state, "cell state");
  }
}

// A create that was interrupted: resumed while the cell is declared active, else closed (unless
// an unknown member holds it). True when this plan closes it.
function planInterruptedCreate(
  ctx: CellCtx,
  live: ObservedCell,
  rec: CellRecord,
  digest: () => string | undefined,
): boolean {
  const { name, d } = ctx;
  if (wantsActive(d)) {
    ctx.out.push({
      kind: "create",
      cell: name,
      desired: d,
      resume: true,
      reason: `resume interrupted create (cell was ${rec.state})`,
    });
    return false;
  }
  if (heldByUnknown(ctx, live, "close")) return false;
  close(ctx, d ? "state: closed" : "removed from cells.d (create was interrupted)", digest());
  scrubAtOnce(ctx);
  return true;
}

// A closed cell (in the graveyard, or under cells/ when its close was interrupted): resurrected
// within grace when declared anew, the close finished, scrubbed when grace ends (and created
// again when declared anew).
function planClosed(
  ctx: CellCtx,
  o: ObservedName,
  closed: ClosedCell,
  live: ObservedCell | undefined,
  digest: () => string | undefined,
): void {
  const { name, d } = ctx;
  const { rec, underCells } = closed;
  const graceMs = d?.graceMs ?? rec.graceMs;
  const graceEnd = at(rec.closedAt) + graceMs;
  const reopen = wantsActive(d) && digest() !== rec.closedDigest;
  if (ctx.now < graceEnd && reopen) {
    ctx.out.push({
      kind: "resurrect",
      cell: name,
      desired: d,
      reason: `declared active again within grace ${formatDuration(graceMs)} (closed ${rec.closedAt})`,
    });
    return;
  }
  const held =
    (underCells || ctx.now >= graceEnd) &&
    heldByUnknown(ctx, underCells ? live : o.graveyard, underCells ? "close" : "scrub");
  if (underCells && !held) close(ctx, "finish interrupted close", rec.closedDigest ?? null);
  if (ctx.now >= graceEnd && !held) {
    ctx.out.push({
      kind: "scrub",
      cell: name,
      reason: `grace ${formatDuration(graceMs)} ended at ${short(graceEnd)}`,
    });
    if (reopen) ctx.out.push(createAction(name, d, "declared active; the previous cell was scrubbed", o, ctx));
  }
  if (wantsActive(d) && !reopen) expiredNote(ctx, d);
}

// A cell declared active with nothing live or closed: created, unless its last close was of
// this very declaration.
function planAbsent(ctx: CellCtx, o: ObservedName, d: DesiredCell, digest: () => string | undefined): void {
  const newest = [...o.archives].sort((a, b) => at(b.record?.archivedAt) - at(a.record?.archivedAt))[0]?.record;
  // The last close: the tombstone (kept past the purge), else the newest archive.
  const lastClosed = o.tombstone ?? newest;
  if (lastClosed && lastClosed.closedDigest === digest()) expiredNote(ctx, d);
  else
    ctx.out.push(
      createAction(
        ctx.name,
        d,
        o.archives.length > 0 ? "declared active (earlier cells are archived)" : "new cell",
        o,
        ctx,
      ),
    );
}

// A graveyard entry beside a live cell (left by hand) is still scrubbed on time.
function scrubStrayGraveyard(ctx: CellCtx, o: ObservedName): void {
  const rec = o.graveyard?.record;
  if (!rec) return;
  const graceEnd = at(rec.closedAt) + rec.graceMs;
  if (ctx.now >= graceEnd && !heldByUnknown(ctx, o.graveyard, "scrub"))
    ctx.out.push({
      kind: "scrub",
      cell: ctx.name,
      reason: `grace ${formatDuration(rec.graceMs)} ended at ${short(graceEnd)}`,
    });
}

function purges(ctx: CellCtx, o: ObservedName): void {
  for (const a of o.archives) {
    const rec = a.record;
    if (!rec?.archivedAt) continue;
    const retentionMs = ctx.d?.retentionMs ?? rec.retentionMs;
    const end = at(rec.archivedAt) + retentionMs;
    if (ctx.now >= end)
      ctx.out.push({
        kind: "purge",
        cell: ctx.name,
        dir: a.dir,
        reason: `retention ${formatDuration(retentionMs)} ended at ${short(end)}`,
      });
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

function createAction(name: string, d: DesiredCell, why: string, o?: ObservedName, ctx?: CellCtx): Action {
  const n = d.members.length;
  const restore = d.restoreFrom && o ? restorePoint(d.restoreFrom, o) : undefined;
  if (d.restoreFrom && !restore && ctx) {
    ctx.diagnostics.push({
      severity: "warning",
      ...d.source,
      field: "spec.restoreFrom",
      message: `no archived checkpoint of ${name} matches "${d.restoreFrom}"; the cell starts empty`,
      hint: "check the archive with lazarus status, or remove restoreFrom",
    });
  }
  return {
    kind: "create",
    cell: name,
    desired: d,
    resume: false,
    ...(restore ? { restore: restore.file } : {}),
    reason: `${why} (${n} member${n === 1 ? "" : "s"}, ttl ${formatDuration(d.ttlMs)}${whereReason(d)}${d.python ? `, python venv${d.python.requirements ? ` from ${d.python.requirements}` : ""}` : ""}${restore ? `, from checkpoint ${restore.name}` : ""}${brokeredReason(d)})`,
  };
}

// ", credentials OPENAI_KEY brokered by the model gateway": what stays out of the cell.
function brokeredReason(d: DesiredCell): string {
  const b = d.gateway?.brokered ?? [];
  return b.length ? `, credential${b.length === 1 ? "" : "s"} ${b.join(", ")} brokered by the model gateway` : "";
}

// Where a new cell runs, as its backend says it ("sandbox", "container localhost/a:1", "remote
// box1"), with its network where the backend gives it one; nothing for a plain local process.
function whereReason(d: DesiredCell): string {
  const b = findBackend(d.backend);
  const where = b?.describe?.(d);
  if (where === undefined) return "";
  return `, ${where}${b?.capabilities.network ? `, network ${d.network}${egressSummary(d)}` : ""}`;
}

// The archived checkpoint a re-created cell starts from: the newest, or the one named.
function restorePoint(restoreFrom: string, o: ObservedName): ObservedCheckpoint | undefined {
  const all = o.archives.flatMap((a) => a.checkpoints).sort((a, b) => a.takenAt - b.takenAt);
  return restoreFrom === "last" ? all[all.length - 1] : all.find((c) => c.name === restoreFrom);
}

// A closing cell is checkpointed first, except where its backend cannot checkpoint yet
// (kubernetes: the tree is on the cluster's volume; see docs/kubernetes.md).
const finalCheckpoint = (rec: CellRecord): boolean => findBackend(rec.backend)?.capabilities.checkpoint ?? false;

// A cell with a member whose process lives but cannot be proved its own (isUnknown): what would
// stop it (close, scrub, replacement) is held, with a diagnostic and a pending note, since the
// stop cannot be done and a scrub would delete a live member's tree. True when held.
function heldByUnknown(ctx: CellCtx, c: ObservedCell | undefined, what: string): boolean {
  const ids = (c?.members ?? []).filter(isUnknown).map((m) => m.identity);
  if (ids.length === 0) return false;
  const who = `${ids.join(", ")} ${ids.length === 1 ? "is" : "are"} unknown`;
  ctx.pending.push({
    cell: ctx.name,
    reason: `${what} held: ${who} (a live process that cannot be proved the member's)`,
  });
  ctx.diagnostics.push({
    severity: "warning",
    field: ctx.name,
    message: `the ${what} of cell ${ctx.name} is held: ${who} (its process lives but cannot be proved the member's, so it cannot be stopped)`,
    hint: "run lazarus as the user its members run as (or as root) to see them; the cell is left as it is until then",
  });
  return true;
}

function close(ctx: CellCtx, why: string, digest: string | null | undefined, checkpointFirst = false): void {
  if (checkpointFirst)
    ctx.out.push({ kind: "checkpoint", cell: ctx.name, trigger: "close", reason: "final checkpoint before close" });
  ctx.out.push({ kind: "close", cell: ctx.name, closeReason: why, desiredDigest: digest ?? null, reason: why });
}

// A cell closed by this plan whose declaration says grace 0s (what lazarus destroy writes) is
// scrubbed in the same plan, right after its close: there is no grace to wait for. The next plan
// would scrub it anyway (its grace has ended); this only saves an apply and makes the plan say it.
function scrubAtOnce(ctx: CellCtx): void {
  if (ctx.d?.graceMs === 0)
    ctx.out.push({
      kind: "scrub",
      cell: ctx.name,
      reason:
        "grace 0s: deleted right after the close, nothing kept to resurrect (records and checkpoints go to the archive)",
    });
}

// Close a live cell (checkpointed first where its backend can), unless an unknown member holds
// the close: then the cell stays live, and nothing else is planned for it. True when it stays live.
function closeLive(
  ctx: CellCtx,
  live: ObservedCell,
  rec: CellRecord,
  why: string,
  desiredDigest: string | null | undefined,
): boolean {
  if (heldByUnknown(ctx, live, "close")) return true;
  close(ctx, why, desiredDigest, finalCheckpoint(rec));
  return false;
}

// A cell in an active state (active, checkpointing, downed). Returns true when it stays live.
function planLive(ctx: CellCtx, live: ObservedCell, rec: CellRecord, digest: () => string | undefined): boolean {
  const d = ctx.d;
  if (!d) return closeLive(ctx, live, rec, `removed from cells.d (was declared in ${rec.sourceFile})`, null);
  if (d.state === "closed") return closeLive(ctx, live, rec, "state: closed", digest());
  const activated = at(rec.activatedAt);
  const expires = d.ttlMs !== rec.ttlMs ? activated + d.ttlMs : at(rec.expiresAt);
  if (ctx.now >= expires)
    return closeLive(ctx, live, rec, `ttl ${formatDuration(d.ttlMs)} expired at ${short(expires)}`, digest());
  // Where the cell runs changes (or a replacement was interrupted): replaced whole, members and
  // all, so nothing else of the cell is planned beside it this round.
  const forces = replacementForces({ d, rec }); // src/cells/fields.ts
  if (forces.length > 0 || rec.replacing) {
    if (heldByUnknown(ctx, live, "replacement")) return true;
    if (d.ttlMs !== rec.ttlMs) ctx.out.push(renewAction(ctx.name, d, rec, expires));
    ctx.out.push(replaceAction(ctx.name, d, rec, forces));
    return true;
  }
  const due = checkpointDue(d, rec, live, ctx.now);
  if (due && rec.state === "checkpointing")
    ctx.out.push({ kind: "checkpoint", cell: ctx.name, trigger: "resume", reason: due });
  const safety = new Set(rec.safetyCheckpoints ?? []);
  const sources = live.checkpoints.filter((c) => !safety.has(c.name)); // a substitute's restore sources
  const members = planMembers(ctx.name, d, live.members, sources, ctx.now, ctx.portfoliosHeld);
  memberWarnings(ctx, live);
  const noneUp = members.executorsDeclared && members.executorsUp === 0;
  if (rec.state === "downed" && noneUp && !planAbandoned(ctx, live, d, rec, digest)) return false;
  if (d.ttlMs !== rec.ttlMs) ctx.out.push(renewAction(ctx.name, d, rec, expires));
  diskShrink(ctx, d, rec);
  planUpdate(ctx, d, rec, live);
  ctx.out.push(...members.actions);
  ctx.pending.push(...members.pending);
  const busy = new Set(members.actions.flatMap((a) => ("member" in a ? [a.member] : [])));
  planProgress(ctx, d, rec, live, sources, busy); // src/plan/progress.ts: commit-or-abort
  planUpOrDown(ctx, d, rec, noneUp);
  if (due && rec.state !== "checkpointing")
    ctx.out.push({ kind: "checkpoint", cell: ctx.name, trigger: "schedule", reason: due });
  const full = diskFull(ctx.name, rec, live);
  if (full) ctx.out.push(full);
  return true;
}

// What observe could not believe of a live cell's members: unknown ones, ignored reports.
function memberWarnings(ctx: CellCtx, live: ObservedCell): void {
  for (const m of live.members) {
    if (m.unverifiable)
      ctx.diagnostics.push({
        severity: "warning",
        field: `${ctx.name} ${m.identity}`,
        message: `${m.identity} is unknown: ${m.unverifiable}; it is not taken for gone`,
        hint: "run lazarus as the user its members run as (or as root) to see it; nothing is done to it until then",
      });
    for (const why of m.ignored ?? []) {
      const hint = why.startsWith("cluster not read")
        ? "check the kubeconfig and that the cluster answers; its members are left as they are until then"
        : "a member wrote it; Lazarus does not believe it";
      ctx.diagnostics.push({ severity: "warning", field: `${ctx.name} ${m.identity}`, message: why, hint });
    }
  }
}

// A downed cell with no executor up: closed as abandoned once downedTimeout has passed, else
// pending until then. False when this plan closes it (held by an unknown member, the rest of the
// cell is still planned).
function planAbandoned(
  ctx: CellCtx,
  live: ObservedCell,
  d: DesiredCell,
  rec: CellRecord,
  digest: () => string | undefined,
): boolean {
  const downedMs = d.downedTimeoutMs;
  const end = at(rec.downedAt) + downedMs;
  if (ctx.now >= end) {
    const why = `abandoned: downed since ${rec.downedAt} with no executor up for ${formatDuration(downedMs)}`;
    return closeLive(ctx, live, rec, why, digest());
  }
  ctx.pending.push({
    cell: ctx.name,
    reason: `closes as abandoned at ${short(end)} unless an executor comes back`,
  });
  return true;
}

// The cell's declared fields that its record is behind on: one update action naming them all.
function planUpdate(ctx: CellCtx, d: DesiredCell, rec: CellRecord, live: ObservedCell): void {
  const changes = cellChanges({ d, rec, disk: live.disk }); // src/cells/fields.ts: one row a field
  if (changes.length === 0) return;
  const fields = changes.map((c) => c.field);
  ctx.out.push({
    kind: "update",
    cell: ctx.name,
    desired: d,
    fields,
    reason: changes.map((c) => c.reason).join(", "),
  });
}

// active → downed when no executor is up once this plan is applied; downed → active when one is.
function planUpOrDown(ctx: CellCtx, d: DesiredCell, rec: CellRecord, noneUp: boolean): void {
  if (noneUp && rec.state !== "downed")
    ctx.out.push({
      kind: "cell-down",
      cell: ctx.name,
      reason: `no executor is up; closes as abandoned after ${formatDuration(d.downedTimeoutMs)} unless one comes back`,
    });
  if (!noneUp && rec.state === "downed")
    ctx.out.push({ kind: "revive", cell: ctx.name, reason: "an executor is up again" });
}

// A smaller disk quota than the live cell's: refused (an image is not shrunk under a live cell's
// files), and said so; the update leaves the disk as it is (see diskChange in src/cells/fields.ts).
function diskShrink(ctx: CellCtx, d: DesiredCell, rec: CellRecord): void {
  const wanted = d.disk?.enforced ? d.disk.bytes : undefined;
  const have = rec.disk?.bytes;
  if (have === undefined || wanted === undefined || wanted >= have) return;
  ctx.diagnostics.push({
    severity: "error",
    ...(d.disk?.at ?? d.source),
    field: "spec.resources.disk",
    message: `cell ${ctx.name} has a disk of ${formatBytes(have)}; a live cell's disk is never shrunk (to ${formatBytes(wanted)})`,
    hint: `keep ${formatBytes(have)} or more, or close the cell and declare it again with restoreFrom: last`,
  });
}

// The quota reached (under 1 MiB or 1% left to members) or room again (5%, at least 2 MiB): an
// event for the cell, once each way.
function diskFull(name: string, rec: CellRecord, live: ObservedCell): Action | undefined {
  const u = live.disk;
  if (!rec.disk || !u?.mounted) return undefined;
  const bytes = rec.disk.bytes;
  if (!rec.diskFull && u.avail < Math.max(1024 ** 2, u.size / 100)) {
    return {
      kind: "disk-full",
      cell: name,
      reached: true,
      avail: u.avail,
      bytes,
      reason: `disk quota of ${formatBytes(bytes)} reached: members get ENOSPC (${formatBytes(u.avail)} left)`,
    };
  }
  if (rec.diskFull && u.avail >= Math.max(2 * 1024 ** 2, u.size / 20)) {
    return {
      kind: "disk-full",
      cell: name,
      reached: false,
      avail: u.avail,
      bytes,
      reason: `disk has room again: ${formatBytes(u.avail)} of its ${formatBytes(bytes)} quota free`,
    };
  }
  return undefined;
}

function renewAction(name: string, d: DesiredCell, rec: CellRecord, expires: number): Action {
  return {
    kind: "renew",
    cell: name,
    ttlMs: d.ttlMs,
    expiresAt: iso(expires),
    reason: `ttl ${formatDuration(rec.ttlMs)} → ${formatDuration(d.ttlMs)}: expires ${short(expires)} (was ${rec.expiresAt})`,
  };
}

// close + create from the latest checkpoint, as one action (terraform's -/+).
function replaceAction(name: string, d: DesiredCell, rec: CellRecord, forces: string[]): Action {
  const r = rec.replacing;
  const from = r ? placeOf(r.from.backend, r.from.container) : placeOf(rec.backend, rec.container);
  const to = placeOf(d.backend, d.container);
  const n = d.members.length;
  const steps = `checkpoint, stop and release on ${r ? r.from.backend : rec.backend}, lay out and restore on ${d.backend}, start ${n} member${n === 1 ? "" : "s"} there`;
  const reason = r
    ? `resume interrupted replacement ${from} → ${to}${r.checkpoint ? ` (checkpoint ${r.checkpoint} taken)` : ""}: ${steps}`
    : `${forces.join(", ")} ${from} → ${to} forces replacement: ${steps}`;
  return {
    kind: "replace",
    cell: name,
    desired: d,
    from,
    to,
    forces: r && forces.length === 0 ? ["(interrupted)"] : forces,
    resume: r !== undefined,
    reason,
  };
}

// Why a checkpoint is due now, or undefined: an interrupted one, or the schedule's previous
// occurrence is later than both the last checkpoint and the activation.
function checkpointDue(d: DesiredCell, rec: CellRecord, live: ObservedCell, now: number): string | undefined {
  if (rec.state === "checkpointing") return "resume interrupted checkpoint";
  if (!d.checkpoint.schedule) return undefined;
  const prev = cronParser()
    .parse(d.checkpoint.schedule, { currentDate: new Date(now + 1), tz: "UTC" })
    .prev()
    .getTime();
  const last = live.checkpoints[live.checkpoints.length - 1]?.takenAt;
  // retried at the next time, not every pass
  const refused = rec.checkpointRefused ? at(rec.checkpointRefused.at) : Number.NEGATIVE_INFINITY;
  const baseline = Math.max(last ?? Number.NEGATIVE_INFINITY, at(rec.activatedAt), refused);
  if (baseline >= prev) return undefined;
  return `schedule "${d.checkpoint.schedule}" was due at ${short(prev)} (last checkpoint ${last !== undefined ? short(last) : "none"})`;
}
