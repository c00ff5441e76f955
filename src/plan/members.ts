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
  const standing = new Set(
    members
      .filter((m) => m.role === "substitute" && m.replaces && !["completed", "exited", "revoked"].includes(m.status))
      .map((m) => m.replaces as string),
  );
  const ctx: Ctx = { cell, now, out: [], pending: [], up: new Set(), done: new Set(), portfoliosHeld, standing };
  const wanted = new Map(d.members.map((m) => [m.identity, m]));
  const have = new Map(members.map((m) => [m.identity, m]));
  const removes: Action[] = [];
  const rest: Action[] = [];

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
  const sub = { ...ctx, out: rest };
  // Everyone but substitutes first: a substitute's fate depends on the member it replaces.
  for (const dm of d.members.filter((m) => m.role !== "substitute")) {
    const m = have.get(dm.identity);
    if (held.has(dm.identity)) continue;
    if (!m || m.role !== dm.role) {
      const re = m !== undefined;
      rest.push({
        kind: "invite",
        cell,
        member: dm.identity,
        desiredMember: dm,
        inviteTtlMs: d.inviteTtlMs,
        reason: re ? `${dm.identity} re-invited as ${dm.role}` : `member ${dm.identity} added as ${dm.role}`,
      });
      if (dm.command) sub.up.add(dm.identity);
      continue;
    }
    planOne(sub, dm, m);
  }
  for (const dm of d.members.filter((m) => m.role === "substitute")) {
    const replaced = dm.replaces as string;
    const m = have.get(dm.identity);
    const inCell = m !== undefined && m.role === dm.role;
    if (sub.up.has(replaced) || sub.done.has(replaced)) {
      const why = sub.up.has(replaced) ? "is up again" : "finished its work";
      if (inCell && isUnknown(m))
        sub.pending.push({
          cell,
          member: dm.identity,
          reason: `${dm.identity}: leaving held while it is unknown (${m.unverifiable})`,
        });
      else if (inCell)
        rest.push({
          kind: "remove-member",
          cell,
          member: dm.identity,
          reason: `${replaced} ${why}, so substitute ${dm.identity} leaves`,
        });
      continue;
    }
    // An executor aborted for a stall (spec.progress) stays stopped: nobody stands in for it.
    if (!inCell && have.get(replaced)?.stalled?.outcome === "abort") continue;
    if (!inCell) {
      const last = checkpoints[checkpoints.length - 1];
      rest.push({
        kind: "invite",
        cell,
        member: dm.identity,
        desiredMember: dm,
        inviteTtlMs: d.inviteTtlMs,
        substitute: { replaces: replaced, ...(last ? { restore: last.file } : {}) },
        reason: `substitute ${dm.identity} stands in for ${replaced}, which is down (${last ? `from checkpoint ${last.name}` : "no checkpoint to start from"})`,
      });
      sub.up.add(dm.identity);
      continue;
    }
    planOne(sub, dm, m);
  }
  const executors = d.members.filter(isExecutor);
  return {
    actions: [...removes, ...rest],
    pending: sub.pending,
    executorsDeclared: executors.length > 0,
    // a finished executor is not a downed one
    executorsUp: executors.filter((m) => sub.up.has(m.identity) || sub.done.has(m.identity)).length,
  };
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
  const { cell, now } = ctx;
  // Unknown (see isUnknown): left as it is, counted as up; a changed command or env waits.
  if (isUnknown(m)) {
    const change =
      (dm.command || m.command) && processChange(dm, m) ? "; its restart for the changed command or env waits" : "";
    ctx.pending.push({
      cell,
      member: dm.identity,
      reason: `${dm.identity}: unknown, left as it is (${m.unverifiable})${change}`,
    });
    if (dm.command) ctx.up.add(dm.identity);
    return;
  }
  // env matters only to a process: a member without a command has nothing to restart.
  const what = dm.command || m.command ? processChange(dm, m) : undefined; // src/cells/fields.ts
  if (what) {
    ctx.out.push({ kind: "restart", cell, member: dm.identity, desiredMember: dm, reason: `${dm.identity}: ${what}` });
    if (dm.command) ctx.up.add(dm.identity);
    return;
  }
  portfolioChange(ctx, dm, m);
  if (!dm.command) {
    if (m.status === "invited" && m.inviteExpiresAt && now >= at(m.inviteExpiresAt)) {
      ctx.out.push({
        kind: "revoke",
        cell,
        member: dm.identity,
        reason: `invitation of ${dm.identity} expired at ${short(at(m.inviteExpiresAt))} without being accepted`,
      });
    }
    return;
  }
  if (benched(ctx, dm, m)) return;
  let status = m.status;
  let failures = m.failures ?? 0;
  let downAt = at(m.downAt);
  let exitCode = m.exitCode;
  // A member recorded without a start time cannot be proved alive by its pid: it is unknown, and
  // the restart first looks for it by its spawn id (as after an interrupted start).
  const unknown = status === "running" && m.startTime === undefined && m.spawnId !== undefined;
  if ((status === "starting" || unknown) && !m.alive) {
    ctx.out.push({
      kind: "restart",
      cell,
      member: dm.identity,
      desiredMember: dm,
      reason: `${dm.identity}: ${unknown ? "recorded without a start time; find it by its spawn id or start it" : "resume interrupted start"}`,
    });
    ctx.up.add(dm.identity);
    return;
  }
  if (status === "running" || status === "starting") {
    // A heartbeat file older than this start (left by an earlier run) does not make it hung.
    const beats = [m.heartbeatAt ?? Number.NaN, at(m.startedAt)].filter((t) => !Number.isNaN(t));
    const lastBeat = beats.length > 0 ? Math.max(...beats) : Number.NaN;
    const hung = m.alive && dm.heartbeatMs !== undefined && now - lastBeat > dm.heartbeatMs;
    if (m.alive && !hung) {
      ctx.up.add(dm.identity);
      return;
    }
    // The exit file's mtime is the member's to set: taken no later than now (a future one would
    // postpone its restart and reset its failure count). An earlier one only brings the restart
    // forward, as an exit time from another clock (a cluster's, a remote host's) may.
    downAt = hung || !m.exit ? now : Math.min(now, m.exit.at);
    exitCode = hung ? null : (m.exit?.code ?? null);
    failures = downAt - at(m.startedAt) >= BACKOFF_RESET_MS ? 1 : failures + 1;
    status = dm.restart === "never" ? "exited" : dm.restart === "on-failure" && exitCode === 0 ? "completed" : "down";
    const why = hung
      ? `heartbeat stale: last beat ${short(lastBeat)}, more than ${formatDuration(dm.heartbeatMs as number)} ago`
      : m.exit?.oom
        ? `killed by its memory limit (OOM, exit code ${m.exit.code})`
        : m.exit
          ? `exited with code ${m.exit.code}`
          : m.handle
            ? `pod ${m.handle} is gone (no exit status)`
            : `process ${m.pid} is gone (no exit status)`;
    ctx.out.push({
      kind: "member-down",
      cell,
      member: dm.identity,
      status,
      downAt: iso(downAt),
      failures,
      exitCode: exitCode ?? null,
      ...(m.exit?.oom && !hung ? { exitReason: "oom" as const } : {}),
      stop: hung,
      reason: `${dm.identity}: ${why}`,
    });
  }
  if (status === "completed" && dm.restart === "on-failure") ctx.done.add(dm.identity);
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
