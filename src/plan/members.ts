// Planning one live cell's members: joins, leaves, downs, restarts with backoff, substitutes and
// invitations. Pure, like the rest of the planner.
import { processChange } from "../cells/fields.js";
import { iso, parseTime, short } from "../util/time.js";
import { formatDuration } from "../config/durations.js";
import type { DesiredCell, DesiredMember } from "../config/types.js";
import type { ObservedCheckpoint, ObservedMember } from "../observe/observe.js";
import type { Action, Pending } from "./actions.js";

export const BACKOFF_FIRST_MS = 10_000;
export const BACKOFF_MAX_MS = 5 * 60_000;
export const BACKOFF_RESET_MS = 10 * 60_000; // up this long, and the failure count starts over

// The wait before restart number `failures` (1-based): 10s, 20s, 40s, ... capped at 5m.
export function backoffMs(failures: number): number {
  return Math.min(BACKOFF_FIRST_MS * 2 ** Math.max(0, failures - 1), BACKOFF_MAX_MS);
}

export interface MemberPlan {
  actions: Action[];
  pending: Pending[];
  executorsDeclared: boolean; // at least one executor or substitute with a command
  executorsUp: number; // of those, how many are up once this plan is applied
}

const at = parseTime;
// Its process lives but cannot be proved this member's (unreadable environment): unknown, not gone.
// Nothing that would stop it is planned (no restart, no removal): a stop cannot be done, and one
// taken for done would start a second copy.
export const isUnknown = (m: ObservedMember): boolean =>
  m.unverifiable !== undefined && (m.status === "running" || m.status === "starting");
const isExecutor = (m: DesiredMember): boolean =>
  (m.role === "executor" || m.role === "substitute") && m.command !== undefined;

interface Ctx {
  cell: string;
  now: number;
  out: Action[];
  pending: Pending[];
  up: Set<string>; // identities up once this plan is applied
  done: Set<string>; // identities that finished their work (exit 0 under restart: on-failure)
  portfoliosHeld: boolean;
  standing: Set<string>; // identities a substitute in the cell stands in for (not finished)
}

// A changed portfolio for a member that is otherwise left running (a restart rewrites it anyway).
function portfolioChange(ctx: Ctx, dm: DesiredMember, m: ObservedMember): void {
  if (ctx.portfoliosHeld || !dm.identity.startsWith("agent:")) return;
  const want = dm.resolvedPortfolio;
  if ((want?.digest ?? undefined) === (m.portfolioDigest ?? undefined)) return;
  const before = m.portfolioModels ?? [];
  const after = want ? (want.document as { models: { model: string }[] }).models.map((x) => x.model) : [];
  const how = dm.command ? ` (${dm.onPortfolioChange === "signal" ? "SIGHUP" : dm.onPortfolioChange})` : "";
  ctx.out.push({
    kind: "update-portfolio",
    cell: ctx.cell,
    member: dm.identity,
    desiredMember: dm,
    before,
    after,
    reason: want
      ? `${dm.identity}: portfolio ${want.name} [${before.join(", ") || "none"}] → [${after.join(", ")}]${how}`
      : `${dm.identity}: no portfolio applies any more (was ${m.portfolioName})`,
  });
}

export function planMembers(
  cell: string,
  d: DesiredCell,
  members: ObservedMember[],
  checkpoints: ObservedCheckpoint[],
  now: number,
  portfoliosHeld = false,
): MemberPlan {
  const standing = standingFor(members);
  const ctx: Ctx = { cell, now, out: [], pending: [], up: new Set(), done: new Set(), portfoliosHeld, standing };
  const wanted = new Map(d.members.map((m) => [m.identity, m]));
  const have = new Map(members.map((m) => [m.identity, m]));
  const { removes, held } = planLeaving(ctx, wanted, members);
  // Everyone but substitutes first: a substitute's fate depends on the member it replaces.
  for (const dm of d.members.filter((m) => m.role !== "substitute")) {
    if (held.has(dm.identity)) continue;
    planDeclared(ctx, d, dm, have.get(dm.identity));
  }
  for (const dm of d.members.filter((m) => m.role === "substitute")) planSubstitute(ctx, d, dm, have, checkpoints);
  const executors = d.members.filter(isExecutor);
  return {
    actions: [...removes, ...ctx.out],
    pending: ctx.pending,
    executorsDeclared: executors.length > 0,
    // a finished executor is not a downed one
    executorsUp: executors.filter((m) => ctx.up.has(m.identity) || ctx.done.has(m.identity)).length,
  };
}

// The identities a substitute in the cell stands in for (while it has not finished).
function standingFor(members: ObservedMember[]): Set<string> {
  return new Set(
    members
      .filter((m) => m.role === "substitute" && m.replaces && !["completed", "exited", "revoked"].includes(m.status))
      .map((m) => m.replaces as string),
  );
}

// Members no longer declared, or declared with another role, leave (planned before any other
// member action); an unknown one's leaving is held (pending), and so is its role change.
function planLeaving(
  ctx: Ctx,
  wanted: Map<string, DesiredMember>,
  members: ObservedMember[],
): { removes: Action[]; held: Set<string> } {
  const { cell } = ctx;
  const removes: Action[] = [];
  const held = new Set<string>(); // unknown members whose removal (or role change) waits
  for (const m of members) {
    const dm = wanted.get(m.identity);
    if ((!dm || dm.role !== m.role) && isUnknown(m)) {
      held.add(m.identity);
      ctx.pending.push({
        cell,
        member: m.identity,
        reason: `${m.identity}: ${dm ? "role change" : "removal"} held while it is unknown (${m.unverifiable})`,
      });
    } else if (!dm)
      removes.push({ kind: "remove-member", cell, member: m.identity, reason: `member ${m.identity} removed` });
    else if (dm.role !== m.role) {
      removes.push({
        kind: "remove-member",
        cell,
        member: m.identity,
        reason: `role of ${m.identity} changed ${m.role} → ${dm.role}; roles are immutable, so it leaves and is invited again`,
      });
    }
  }
  return { removes, held };
}

// A declared member other than a substitute: invited when it is not in the cell with its role
// (again after a role change), else planned as it is (planOne).
function planDeclared(ctx: Ctx, d: DesiredCell, dm: DesiredMember, m: ObservedMember | undefined): void {
  if (!m || m.role !== dm.role) {
    const re = m !== undefined;
    ctx.out.push({
      kind: "invite",
      cell: ctx.cell,
      member: dm.identity,
      desiredMember: dm,
      inviteTtlMs: d.inviteTtlMs,
      reason: re ? `${dm.identity} re-invited as ${dm.role}` : `member ${dm.identity} added as ${dm.role}`,
    });
    if (dm.command) ctx.up.add(dm.identity);
    return;
  }
  planOne(ctx, dm, m);
}

// A substitute: it leaves once the member it replaces is up again or finished its work, stands in
// (invited, from the latest checkpoint) while that member is down, else is planned as it is.
function planSubstitute(
  ctx: Ctx,
  d: DesiredCell,
  dm: DesiredMember,
  have: Map<string, ObservedMember>,
  checkpoints: ObservedCheckpoint[],
): void {
  const { cell } = ctx;
  const replaced = dm.replaces as string;
  const m = have.get(dm.identity);
  const inCell = m !== undefined && m.role === dm.role;
  if (ctx.up.has(replaced) || ctx.done.has(replaced)) {
    const why = ctx.up.has(replaced) ? "is up again" : "finished its work";
    if (inCell && isUnknown(m))
      ctx.pending.push({
        cell,
        member: dm.identity,
        reason: `${dm.identity}: leaving held while it is unknown (${m.unverifiable})`,
      });
    else if (inCell)
      ctx.out.push({
        kind: "remove-member",
        cell,
        member: dm.identity,
        reason: `${replaced} ${why}, so substitute ${dm.identity} leaves`,
      });
    return;
  }
  // An executor aborted for a stall (spec.progress) stays stopped: nobody stands in for it.
  if (!inCell && have.get(replaced)?.stalled?.outcome === "abort") return;
  if (!inCell) {
    const last = checkpoints[checkpoints.length - 1];
    ctx.out.push({
      kind: "invite",
      cell,
      member: dm.identity,
      desiredMember: dm,
      inviteTtlMs: d.inviteTtlMs,
      substitute: { replaces: replaced, ...(last ? { restore: last.file } : {}) },
      reason: `substitute ${dm.identity} stands in for ${replaced}, which is down (${last ? `from checkpoint ${last.name}` : "no checkpoint to start from"})`,
    });
    ctx.up.add(dm.identity);
    return;
  }
  planOne(ctx, dm, m);
}

// A member Lazarus stopped for a stall (spec.progress) and keeps stopped: aborted (until its
// command or env changes), or while the substitute summoned for it stands in. Says so (pending).
function benched(ctx: Ctx, dm: DesiredMember, m: ObservedMember): boolean {
  const s = m.stalled;
  if (!s || m.status === "running" || m.status === "starting") return false;
  if (s.outcome === "substitute" && !ctx.standing.has(dm.identity)) return false;
  ctx.pending.push({
    cell: ctx.cell,
    member: dm.identity,
    reason:
      s.outcome === "abort"
        ? `${dm.identity}: aborted for no progress at ${short(at(s.at))}; stays stopped until its command or env changes`
        : `${dm.identity}: stopped for no progress at ${short(at(s.at))}; restarts once its substitute is done`,
  });
  return true;
}

// One member present with its declared role.
function planOne(ctx: Ctx, dm: DesiredMember, m: ObservedMember): void {
  if (isUnknown(m)) return leaveUnknown(ctx, dm, m);
  // env matters only to a process: a member without a command has nothing to restart.
  const what = dm.command || m.command ? processChange(dm, m) : undefined; // src/cells/fields.ts
  if (what) {
    ctx.out.push({
      kind: "restart",
      cell: ctx.cell,
      member: dm.identity,
      desiredMember: dm,
      reason: `${dm.identity}: ${what}`,
    });
    if (dm.command) ctx.up.add(dm.identity);
    return;
  }
  portfolioChange(ctx, dm, m);
  if (!dm.command) return revokeExpired(ctx, dm, m);
  if (benched(ctx, dm, m) || resumeStart(ctx, dm, m)) return;
  const down: Down | undefined =
    m.status === "running" || m.status === "starting"
      ? planDown(ctx, dm, m)
      : { status: m.status, failures: m.failures ?? 0, downAt: at(m.downAt) };
  if (!down) return;
  if (down.status === "completed" && dm.restart === "on-failure") ctx.done.add(dm.identity);
  planRestart(ctx, dm, down);
}

// Unknown (see isUnknown): left as it is, counted as up; a changed command or env waits.
function leaveUnknown(ctx: Ctx, dm: DesiredMember, m: ObservedMember): void {
  const change =
    (dm.command || m.command) && processChange(dm, m) ? "; its restart for the changed command or env waits" : "";
  ctx.pending.push({
    cell: ctx.cell,
    member: dm.identity,
    reason: `${dm.identity}: unknown, left as it is (${m.unverifiable})${change}`,
  });
  if (dm.command) ctx.up.add(dm.identity);
}

// A member without a command: its invitation is revoked once it expired unaccepted.
function revokeExpired(ctx: Ctx, dm: DesiredMember, m: ObservedMember): void {
  if (m.status === "invited" && m.inviteExpiresAt && ctx.now >= at(m.inviteExpiresAt)) {
    ctx.out.push({
      kind: "revoke",
      cell: ctx.cell,
      member: dm.identity,
      reason: `invitation of ${dm.identity} expired at ${short(at(m.inviteExpiresAt))} without being accepted`,
    });
  }
}

// A start that did not finish (or a member recorded without a start time, which cannot be proved
// alive by its pid: unknown, and the restart first looks for it by its spawn id), with nothing
// found alive: restarted now. True when planned.
function resumeStart(ctx: Ctx, dm: DesiredMember, m: ObservedMember): boolean {
  const unknown = m.status === "running" && m.startTime === undefined && m.spawnId !== undefined;
  if (!((m.status === "starting" || unknown) && !m.alive)) return false;
  ctx.out.push({
    kind: "restart",
    cell: ctx.cell,
    member: dm.identity,
    desiredMember: dm,
    reason: `${dm.identity}: ${unknown ? "recorded without a start time; find it by its spawn id or start it" : "resume interrupted start"}`,
  });
  ctx.up.add(dm.identity);
  return true;
}

// A member's state as this plan leaves it: its status, failure count and when it went down.
interface Down {
  status: ObservedMember["status"];
  failures: number;
  downAt: number;
}

// A member recorded running or starting: up (undefined) while its process lives and its heartbeat
// is fresh; else it is down now, planned as member-down, and the state that follows is returned.
function planDown(ctx: Ctx, dm: DesiredMember, m: ObservedMember): Down | undefined {
  const { now } = ctx;
  // A heartbeat file older than this start (left by an earlier run) does not make it hung.
  const beats = [m.heartbeatAt ?? Number.NaN, at(m.startedAt)].filter((t) => !Number.isNaN(t));
  const lastBeat = beats.length > 0 ? Math.max(...beats) : Number.NaN;
  const hung = m.alive && dm.heartbeatMs !== undefined && now - lastBeat > dm.heartbeatMs;
  if (m.alive && !hung) {
    ctx.up.add(dm.identity);
    return undefined;
  }
  // The exit file's mtime is the member's to set: taken no later than now (a future one would
  // postpone its restart and reset its failure count). An earlier one only brings the restart
  // forward, as an exit time from another clock (a cluster's, a remote host's) may.
  const downAt = hung || !m.exit ? now : Math.min(now, m.exit.at);
  const exitCode = hung ? null : (m.exit?.code ?? null);
  const failures = downAt - at(m.startedAt) >= BACKOFF_RESET_MS ? 1 : (m.failures ?? 0) + 1;
  const status =
    dm.restart === "never" ? "exited" : dm.restart === "on-failure" && exitCode === 0 ? "completed" : "down";
  ctx.out.push({
    kind: "member-down",
    cell: ctx.cell,
    member: dm.identity,
    status,
    downAt: iso(downAt),
    failures,
    exitCode: exitCode ?? null,
    ...(m.exit?.oom && !hung ? { exitReason: "oom" as const } : {}),
    stop: hung,
    reason: `${dm.identity}: ${downReason(dm, m, hung, lastBeat)}`,
  });
  return { status, failures, downAt };
}

// Why a member is down, for people.
function downReason(dm: DesiredMember, m: ObservedMember, hung: boolean, lastBeat: number): string {
  return hung
    ? `heartbeat stale: last beat ${short(lastBeat)}, more than ${formatDuration(dm.heartbeatMs as number)} ago`
    : m.exit?.oom
      ? `killed by its memory limit (OOM, exit code ${m.exit.code})`
      : m.exit
        ? `exited with code ${m.exit.code}`
        : m.handle
          ? `pod ${m.handle} is gone (no exit status)`
          : `process ${m.pid} is gone (no exit status)`;
}

// A down member its restart policy restarts: now once its backoff has passed, else pending.
function planRestart(ctx: Ctx, dm: DesiredMember, down: Down): void {
  const { cell, now } = ctx;
  const { status, failures, downAt } = down;
  const restartable = dm.restart === "always" ? true : dm.restart === "on-failure" ? status === "down" : false;
  if (!restartable || Number.isNaN(downAt)) return;
  const wait = backoffMs(Math.max(1, failures));
  const due = downAt + wait;
  if (now >= due) {
    ctx.out.push({
      kind: "restart",
      cell,
      member: dm.identity,
      desiredMember: dm,
      reason: `${dm.identity}: restart after backoff ${formatDuration(wait)} (failure ${failures})`,
    });
    ctx.up.add(dm.identity);
  } else {
    ctx.pending.push({
      cell,
      member: dm.identity,
      reason: `${dm.identity}: restart in ${formatDuration(due - now)} (backoff ${formatDuration(wait)} after failure ${failures})`,
    });
  }
}
