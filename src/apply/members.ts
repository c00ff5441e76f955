// Member operations: start, stop, invite (with a token), accept, revoke, down, restart, remove.
import { restoreReplacing } from "./restore.js";
import { randomBytes, createHash, timingSafeEqual } from "node:crypto";
import { rm } from "node:fs/promises";
import path from "node:path";
import {
  cellPaths,
  inviteFile,
  memberExitFile,
  memberHome,
  memberLog,
  portfolioFile,
  type CellPaths,
} from "../cells/layout.js";
import type { CellRecord, MemberRecord } from "../cells/record.js";
import { processChange, syncMember } from "../cells/fields.js";
import { configRelative } from "../config/programs.js";
import type { DesiredMember } from "../config/types.js";
import type { Action } from "../plan/actions.js";
import { appendLine, writeJsonAtomic, writeTextAtomic } from "../util/fsx.js";
import { LazarusError } from "../util/errors.js";
import { CAPS, readUntrusted } from "../util/safe-fs.js";
import { failpoint } from "../util/failpoint.js";
import { memberRef, memberSpec } from "../backends/backend.js";
import {
  backendOf,
  decide,
  iso,
  liveCell,
  loadRecord,
  newId,
  saveRecord,
  type ApplyEnv,
  type Details,
} from "./context.js";
import { findBackend } from "../backends/table.js";
import { checkpointCell } from "./checkpoint.js";
import { rotateCheckpoints } from "../checkpoints/checkpoint.js";
import { listCheckpoints } from "../observe/observe.js";
import { LIMITS } from "../config/types.js";
import { guardCell, guardDir } from "./guard.js";
import { hostSettings } from "../host/settings.js";
import {
  admitGatewayMember,
  forgetGatewayMember,
  revokeGatewayToken,
  setGatewayPortfolio,
  type GatewayEnv,
} from "../gateway/cells.js";
import { dropMemberBridge } from "../bridge/member.js";

// Arguments that start with ./ are paths relative to the config dir (as in compose files); the
// loader refused any (../x, ./a/../../x, a link) that leads out of it.
export function resolveCommand(command: string[], configDir: string): string[] {
  return command.map((a) => (configRelative(a) ? path.resolve(configDir, a) : a));
}

export function newMember(dm: DesiredMember, env: Pick<ApplyEnv, "now">): MemberRecord {
  const m: MemberRecord = {
    identity: dm.identity,
    home: dm.home,
    role: dm.role,
    env: {},
    status: "joined",
    restarts: 0,
    joinedAt: iso(env.now),
  };
  syncMember(m, dm);
  return m;
}

// Write the member's resolved portfolio (atomically) and record which one it is.
export async function writePortfolio(
  cp: CellPaths,
  rec: CellRecord,
  m: MemberRecord,
  dm: DesiredMember,
  env: ApplyEnv,
): Promise<void> {
  const r = dm.resolvedPortfolio;
  if (!r) return; // none applies, or portfolios/ is held: leave what is there
  const file = portfolioFile(cp, m.home, findBackend(rec.backend)?.memberFilesInMeta);
  await guardCell(cp, env, [path.dirname(file)]); // home/<name>/.lazarus is the member's to plant in (process backend)
  await writeJsonAtomic(file, r.document);
  await backendOf(env, rec).filesChanged?.(rec, cp.dir);
  await setGatewayPortfolio(gatewayOf(env), rec, m, r.document);
  m.portfolioName = r.name;
  m.portfolioDigest = r.digest;
  m.portfolioModels = (r.document as { models: { model: string }[] }).models.map((x) => x.model);
}

const tokenDigest = (t: string): Buffer => createHash("sha256").update(t).digest();

// Mint an invitation: a random token stored 0600 in .lazarus/invites/, never printed or logged.
export async function inviteMember(
  cp: CellPaths,
  m: MemberRecord,
  ttlMs: number,
  env: Pick<ApplyEnv, "now">,
): Promise<void> {
  await guardDir(cp, env, cp.invites, 0o700);
  await writeTextAtomic(inviteFile(cp, m.home), `${randomBytes(24).toString("base64url")}\n`, 0o600);
  m.status = "invited";
  m.invitedAt = iso(env.now);
  m.inviteExpiresAt = iso(env.now + ttlMs);
  delete m.acceptedAt;
  delete m.revokedAt;
}

// Before a spawn: find the process a crashed run may have started by the recorded spawn id (then
// the member is "running"), or record "starting" with a new spawn id and clear the way for it.
async function prepareSpawn(
  cp: CellPaths,
  rec: CellRecord,
  m: MemberRecord,
  env: ApplyEnv,
  backend: ReturnType<typeof backendOf>,
  minted: boolean,
): Promise<void> {
  if (!minted && (m.status === "starting" || (m.status === "running" && m.startTime === undefined)) && m.spawnId) {
    const found = backend.find(rec.name, m.spawnId);
    if (found) {
      Object.assign(
        m,
        { status: "running", startTime: found.startTime },
        found.handle !== undefined ? { handle: found.handle } : { pid: found.pid },
      );
      await saveRecord(cp, rec, env);
      return;
    }
  }
  m.status = "starting";
  m.spawnId = newId();
  delete m.pid;
  delete m.handle;
  delete m.startTime;
  delete m.exitReason;
  await saveRecord(cp, rec, env);
  await guardCell(cp, env, [cp.logs, memberHome(cp, m.home)], [memberLog(cp, m.home)]);
  await rm(memberExitFile(cp, m.home), { force: true });
  failpoint("member:before-spawn");
}

// Start (or, after a crash mid-start, find) the member's process and record it.
// The record is saved as "starting" with a spawnId before the spawn, so a crash between the
// spawn and the next save leaves a process that the next run can find by that id.
// saveAfter false: the caller saves the record itself before it returns (create).
// minted: the member's spawn id was minted by this run and nothing was spawned with it (create's
// staging record): there is no process to look for, and none is looked for (the record is
// readable, and an impostor carrying that id in its environment must not be taken for the member).
// announced: minted, the record on disk already says this member is "starting" with that id, and
// nothing has run in the cell's tree since it was made (create's first spawn): no save either,
// and no guard of a tree nobody has touched.
export async function startMember(
  cp: CellPaths,
  rec: CellRecord,
  m: MemberRecord,
  env: ApplyEnv,
  opts: { saveAfter?: boolean; minted?: boolean; announced?: boolean } = {},
): Promise<void> {
  if (!m.command) {
    if (m.status !== "invited" && m.status !== "revoked") m.status = "joined";
    delete m.pid;
    delete m.startTime;
    return;
  }
  const backend = backendOf(env, rec);
  // Minted before the "starting" save: a crash after it leaves a token no process holds.
  const gateway = await admitGatewayMember(gatewayOf(env), rec, m);
  if (opts.announced && m.status === "starting" && m.spawnId) {
    failpoint("member:before-spawn");
  } else await prepareSpawn(cp, rec, m, env, backend, opts.minted === true);
  if (m.status !== "starting" || !m.spawnId) return; // found running by its spawn id
  const started = await backend.start(rec, {
    ...memberSpec(rec, cp, m, {
      command: resolveCommand(m.command, env.configDir),
      env: m.env,
      configDir: env.configDir,
      memberFilesInMeta: findBackend(rec.backend)?.memberFilesInMeta,
    }),
    logFile: memberLog(cp, m.home),
    logs: logLimits(rec, env),
    exitFile: memberExitFile(cp, m.home),
    spawnId: m.spawnId,
    ...(gateway ? { gateway } : {}),
  });
  failpoint("member:after-spawn");
  if (started.handle !== undefined) {
    m.handle = started.handle; // no local process (kubernetes)
    delete m.pid;
  } else m.pid = started.pid;
  m.startedAt = iso(env.now);
  delete m.exitCode;
  delete m.stalled; // running again: no longer kept stopped for a stall
  if (started.startTime === undefined) {
    m.status = "starting"; // unknown: the next run finds it by its spawn id, never by the bare pid
  } else {
    m.status = "running";
    m.startTime = started.startTime;
  }
  await appendLine(
    cp.spawnLog,
    JSON.stringify({
      time: iso(env.now),
      cell: rec.name,
      member: m.identity,
      role: m.role,
      backend: rec.backend,
      ...(m.handle ? { handle: m.handle } : { pid: m.pid }),
      command: m.command,
    }),
  );
  if (opts.saveAfter !== false) await saveRecord(cp, rec, env);
}

// A member's incarnation ends here, whatever ends it: Lazarus stops it (stop: the backend ends its
// whole tree), or it was found gone (it exited or died by itself). Its gateway token goes with it,
// before the record says so (a crash between the two finds it gone again and revokes again); its
// next start mints a new one.
async function endIncarnation(rec: CellRecord, m: MemberRecord, env: ApplyEnv, stop: boolean): Promise<void> {
  if (stop) await backendOf(env, rec).stop(rec, m, env.stopTimeoutMs);
  await revokeGatewayToken(gatewayOf(env), rec, m.home);
}

export async function stopMember(rec: CellRecord, m: MemberRecord, env: ApplyEnv): Promise<void> {
  await endIncarnation(rec, m, env, true);
  if (m.command && (m.status === "running" || m.status === "starting")) {
    m.status = "exited";
    m.exitedAt = iso(env.now);
  }
}

function find(rec: CellRecord, identity: string): MemberRecord {
  const m = rec.members.find((x) => x.identity === identity);
  if (!m) throw new LazarusError("MEMBER_MISSING", `cell ${rec.name} has no member ${identity}`);
  return m;
}

// A member joins: home dir, then its process, or an invitation when it has no command.
// A substitute starts from the last checkpoint's project/ and shared/ (after a safety checkpoint
// of the current ones) with a home of its own, never its predecessor's.
export async function invite(a: Extract<Action, { kind: "invite" }>, env: ApplyEnv): Promise<Details> {
  const cp = liveCell(env, a.cell);
  let rec = await loadRecord(cp);
  const dm = a.desiredMember;
  const details: Details = { member: a.member, role: dm.role };
  if (a.substitute && !rec.members.some((x) => x.identity === a.member)) {
    const source = a.substitute.restore;
    // Never restore project/ and shared/ from under an executor that still runs in the cell.
    const running = rec.members
      .filter(
        (x) =>
          x.command && x.identity !== a.substitute?.replaces && backendOf(env, rec).isAlive(memberRef(rec.name, x)),
      )
      .map((x) => x.identity);
    if (source && running.length > 0) details.restoreSkipped = `${running.join(", ")} still running`;
    else if (source) {
      // The source must be a whole checkpoint of this cell before anything is touched.
      if (!(await listCheckpoints(cp.checkpoints)).some((c) => c.file === source)) {
        throw new LazarusError(
          "RESTORE_FAILED",
          `substitute ${a.member}: checkpoint ${path.basename(source)} is no longer in ${cp.checkpoints}; nothing was changed`,
        );
      }
      const safety = await checkpointCell(
        cp,
        rec,
        `before substitute ${a.member} joins for ${a.substitute.replaces}`,
        env,
        source,
      );
      details.safetyCheckpoint = safety;
      rec = await loadRecord(cp);
      await restoreReplacing(backendOf(env, rec), rec, cp.dir, source, ["project", "shared"]);
      await rotateCheckpoints(cp.checkpoints, rec.checkpointKeep ?? LIMITS.defaultKeep);
      details.restoredFrom = path.basename(source);
    }
    details.replaces = a.substitute.replaces;
  }
  await guardCell(cp, env, [memberHome(cp, dm.home)]);
  await backendOf(env, rec).prepareCell(rec, cp.dir);
  let m = rec.members.find((x) => x.identity === a.member);
  if (!m) {
    m = newMember(dm, env);
    rec.members.push(m);
  }
  syncMember(m, dm);
  await writePortfolio(cp, rec, m, dm, env);
  if (dm.command) await startMember(cp, rec, m, env);
  else await inviteMember(cp, m, a.inviteTtlMs, env);
  await saveRecord(cp, rec, env);
  await decide(cp, env, {
    decision: a.substitute ? "substitute" : "invite",
    member: a.member,
    role: m.role,
    reason: a.reason,
    ...(m.inviteExpiresAt && !dm.command ? { expiresAt: m.inviteExpiresAt } : {}),
  });
  return {
    ...details,
    status: m.status,
    ...(m.pid ? { pid: m.pid } : {}),
    ...(m.inviteExpiresAt && !dm.command ? { expiresAt: m.inviteExpiresAt } : {}),
  };
}

export async function removeMember(a: Extract<Action, { kind: "remove-member" }>, env: ApplyEnv): Promise<Details> {
  const cp = liveCell(env, a.cell);
  const rec = await loadRecord(cp);
  const m = rec.members.find((x) => x.identity === a.member);
  if (m) await stopMember(rec, m, env);
  await guardDir(cp, env, cp.invites, 0o700);
  await rm(inviteFile(cp, m?.home ?? "-"), { force: true });
  rec.members = rec.members.filter((x) => x.identity !== a.member);
  if (m) await forgetGatewayMember(gatewayOf(env), rec, m.home);
  await saveRecord(cp, rec, env);
  if (m) await dropMemberBridge(path.dirname(env.paths.ledger), rec, m.home);
  await decide(cp, env, { decision: "remove-member", member: a.member, reason: a.reason });
  return { member: a.member, role: m?.role };
}

// Record what the planner saw: the member exited or stopped beating (a hung one is stopped).
export async function memberDown(a: Extract<Action, { kind: "member-down" }>, env: ApplyEnv): Promise<Details> {
  const cp = liveCell(env, a.cell);
  const rec = await loadRecord(cp);
  const m = find(rec, a.member);
  // a hung one is stopped; either way its incarnation ends, whether or not a restart follows
  await endIncarnation(rec, m, env, a.stop);
  m.status = a.status;
  m.downAt = a.downAt;
  m.exitedAt = a.downAt;
  m.failures = a.failures;
  m.exitCode = a.exitCode;
  if (a.exitReason) m.exitReason = a.exitReason;
  await saveRecord(cp, rec, env);
  await decide(cp, env, {
    decision: "member-down",
    member: a.member,
    reason: a.reason,
    exitCode: a.exitCode,
    failures: a.failures,
  });
  return { member: a.member, status: a.status, exitCode: a.exitCode, failures: a.failures };
}

export async function restart(a: Extract<Action, { kind: "restart" }>, env: ApplyEnv): Promise<Details> {
  const cp = liveCell(env, a.cell);
  const rec = await loadRecord(cp);
  const m = find(rec, a.member);
  const dm = a.desiredMember;
  // A spawn interrupted by a crash may have left the wanted process running: adopt it.
  const unknown = m.status === "starting" || (m.status === "running" && m.startTime === undefined); // found by spawn id below
  if (!(processChange(dm, m) === undefined && unknown)) {
    await stopMember(rec, m, env);
    syncMember(m, dm);
    await writePortfolio(cp, rec, m, dm, env);
    m.restarts += 1;
    if (m.status !== "invited" && m.status !== "revoked") m.status = dm.command ? "exited" : "joined";
    await saveRecord(cp, rec, env);
  }
  await startMember(cp, rec, m, env);
  await decide(cp, env, { decision: "restart", member: a.member, reason: a.reason, pid: m.pid });
  return { member: a.member, pid: m.pid, restarts: m.restarts };
}

export async function revoke(a: Extract<Action, { kind: "revoke" }>, env: ApplyEnv): Promise<Details> {
  const cp = liveCell(env, a.cell);
  const rec = await loadRecord(cp);
  const m = find(rec, a.member);
  await guardDir(cp, env, cp.invites, 0o700);
  await rm(inviteFile(cp, m.home), { force: true });
  m.status = "revoked";
  m.revokedAt = iso(env.now);
  await saveRecord(cp, rec, env);
  await decide(cp, env, { decision: "revoke", member: a.member, reason: a.reason });
  return { member: a.member };
}

export type AcceptResult = { status: "accepted" } | { status: "refused"; why: string };

// `lazarus accept`: the token must match and the invitation must still be open at `now`.
export async function accept(
  cellDir: string,
  identity: string,
  token: string,
  env: Pick<ApplyEnv, "now">,
): Promise<AcceptResult> {
  const cp = cellPaths(cellDir);
  const rec = await loadRecord(cp);
  const m = rec.members.find((x) => x.identity === identity);
  if (!m) return { status: "refused", why: `cell ${rec.name} has no member ${identity}` };
  if (m.status !== "invited")
    return { status: "refused", why: `${identity} has no open invitation (status ${m.status})` };
  if (m.inviteExpiresAt && env.now >= Date.parse(m.inviteExpiresAt))
    return { status: "refused", why: `the invitation of ${identity} expired at ${m.inviteExpiresAt}` };
  const read = await readUntrusted(inviteFile(cp, m.home), CAPS.token, cp.dir);
  const stored = read.ok ? read.text.trim() : "";
  if (!stored || !timingSafeEqual(tokenDigest(stored), tokenDigest(token.trim())))
    return { status: "refused", why: "the token does not match" };
  m.status = "joined";
  m.acceptedAt = iso(env.now);
  await guardDir(cp, env, cp.invites, 0o700);
  await rm(inviteFile(cp, m.home), { force: true });
  await saveRecord(cp, rec, env);
  await decide(cp, env, { decision: "accept", member: identity });
  return { status: "accepted" };
}

// A member's portfolio changed: rewrite its file, then tell its process as it asked
// (SIGHUP to its group, a restart, or nothing).
export async function updatePortfolio(
  a: Extract<Action, { kind: "update-portfolio" }>,
  env: ApplyEnv,
): Promise<Details> {
  const cp = liveCell(env, a.cell);
  const rec = await loadRecord(cp);
  const m = find(rec, a.member);
  const dm = a.desiredMember;
  if (dm.resolvedPortfolio) await writePortfolio(cp, rec, m, dm, env);
  else {
    await guardCell(cp, env, [path.dirname(portfolioFile(cp, m.home, findBackend(rec.backend)?.memberFilesInMeta))]);
    await rm(portfolioFile(cp, m.home, findBackend(rec.backend)?.memberFilesInMeta), { force: true });
    await backendOf(env, rec).filesChanged?.(rec, cp.dir);
    await setGatewayPortfolio(gatewayOf(env), rec, m, undefined);
    delete m.portfolioName;
    delete m.portfolioDigest;
    delete m.portfolioModels;
  }
  await saveRecord(cp, rec, env);
  let told = "none";
  const backend = backendOf(env, rec);
  const alive = backend.isAlive(memberRef(rec.name, m));
  if (alive && dm.onPortfolioChange === "signal") {
    told = backend.signal(rec, m, "SIGHUP") ? "SIGHUP" : "gone";
  } else if (alive && dm.onPortfolioChange === "restart") {
    await stopMember(rec, m, env);
    m.restarts += 1;
    await saveRecord(cp, rec, env);
    await startMember(cp, rec, m, env);
    told = "restart";
  }
  await decide(cp, env, {
    decision: "update-portfolio",
    member: a.member,
    reason: a.reason,
    before: a.before,
    after: a.after,
    told,
  });
  return { member: a.member, portfolio: m.portfolioName ?? null, before: a.before, after: a.after, told };
}

// The model gateway's view of this apply: the state dir and the operator's settings.
export function gatewayOf(env: ApplyEnv): GatewayEnv {
  return {
    stateRoot: path.dirname(env.paths.ledger),
    hostEnv: env.hostEnv,
    host: env.host ?? hostSettings(env.hostEnv),
  };
}

// The rotation a member's log starts with: its cell's spec.logs, else the host's default.
function logLimits(rec: CellRecord, env: ApplyEnv): { maxBytes: number; keep: number; pump: boolean } {
  const host = (env.host ?? hostSettings(env.hostEnv)).logs;
  return { maxBytes: rec.logs?.maxBytes ?? host.maxBytes, keep: rec.logs?.keep ?? host.keep, pump: host.pump };
}
