// The side effects of each cell-level action, each written so that running it again after a
// crash at any point finishes the job instead of repeating or corrupting it.
import { cp, lstat, mkdir, readdir, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { cellPaths, memberHome, type CellPaths } from "../cells/layout.js";
import { transition } from "../cells/lifecycle.js";
import { RECORD_FORMAT, type CellRecord, type MemberRecord } from "../cells/record.js";
import { syncMember, syncRecord, updatePrepares, updateRestarts } from "../cells/fields.js";
import type { DesiredCell } from "../config/types.js";
import type { Action } from "../plan/actions.js";
import { CHECKPOINT_DIRS } from "../checkpoints/checkpoint.js";
import { listCheckpoints } from "../observe/observe.js";
import { readJson, syncDir, writeJsonAtomic, writeInPlace } from "../util/fsx.js";
import { BugError, LazarusError, isErrno } from "../util/errors.js";
import { failpoint } from "../util/failpoint.js";
import { resolveCredentials, writeCredentials } from "./credentials.js";
import { memberRef, type Backend } from "../backends/backend.js";
import {
  backendOf,
  decide,
  exists,
  iso,
  liveCell,
  loadRecord,
  newId,
  recordText,
  saveRecord,
  type ApplyEnv,
  type Details,
} from "./context.js";
import { gatewayOf, inviteMember, newMember, startMember, stopMember, writePortfolio } from "./members.js";
import { forgetGatewayCell, setGatewayPortfolio, syncGatewayBudget } from "../gateway/cells.js";
import { guardCell, recordPlanted } from "./guard.js";
import { BRANCH_ARGS, LOG_ARGS, STATUS_ARGS, gitRefusal, memberGit } from "./member-git.js";
import { ensureRealDir, ensureRegularOrAbsent, type Planted } from "../util/real-dirs.js";
import { touchNoFollow } from "../util/safe-fs.js";
import { readTombstone, writeTombstone } from "../observe/tombstone.js";
import { applyPython, pruneVenvs } from "../runtime/python/venv.js";
import { reachedHosts } from "../egress/events.js";
import { eventsFile } from "../egress/state.js";
import { startClock } from "../progress/state.js";
import { progressForCloseLog } from "../progress/handle.js";

export type { ApplyEnv, Details } from "./context.js";
export { invite, removeMember, restart, memberDown, revoke, updatePortfolio } from "./members.js";
export { checkpoint, failureStopsCell } from "./checkpoint.js";
export { scrub } from "./scrub.js";

const layoutDirs = (cp_: CellPaths, homes: string[]): string[] => [
  cp_.meta,
  cp_.secrets,
  cp_.checkpoints,
  cp_.logs,
  cp_.project,
  cp_.artifacts,
  cp_.homes,
  ...homes.map((h) => memberHome(cp_, h)),
];

// Directories of spec §6, created if missing; existing files are never touched. Returns what a
// member planted in their place (moved aside: links are never followed).
export async function ensureLayout(cp_: CellPaths, homes: string[]): Promise<Planted[]> {
  const planted: Planted[] = [];
  for (const d of layoutDirs(cp_, homes)) planted.push(...(await ensureRealDir(cp_.dir, d)));
  for (const f of [cp_.decisions, cp_.spawnLog]) planted.push(...(await ensureRegularOrAbsent(f)));
  for (const f of [cp_.scratchpad, cp_.decisions, cp_.spawnLog]) await touchNoFollow(f);
  return planted;
}

// The disk quota a new incarnation starts with (its backend makes the image at prepareCell); a
// live cell's changes only through update, which stops its members first when the image is new.
export function setDisk(rec: CellRecord, d: DesiredCell): void {
  if (d.disk?.enforced) rec.disk = { bytes: d.disk.bytes };
  else delete rec.disk;
}

// The new cell's whole tree in the staging directory: layout, record (already "preparing", its
// members with commands "starting" under fresh spawn ids, added to minted) and credential manifest,
// all synced. Returns the record and its text as written.
async function stageCell(
  staging: string,
  d: DesiredCell,
  values: Record<string, string>,
  env: ApplyEnv,
  minted: Set<string>,
): Promise<{ rec: CellRecord; text: string }> {
  const sp = cellPaths(staging);
  // The whole layout is made here, in a directory no member has ever seen, and arrives whole
  // with the rename: nothing can have been planted in it, so it needs no checking after.
  for (const dir of layoutDirs(
    sp,
    d.members.map((m) => m.home),
  ))
    await mkdir(dir, { recursive: true, mode: 0o755 });
  for (const f of [sp.scratchpad, sp.decisions, sp.spawnLog]) await writeFile(f, "", { flag: "a", mode: 0o644 });
  const uid = newId();
  const rec: CellRecord = {
    formatVersion: RECORD_FORMAT,
    uid,
    life: uid,
    name: d.name,
    state: "invited",
    project: d.project,
    owner: d.owner,
    backend: d.backend,
    labels: {},
    sourceFile: d.source.file,
    ttlMs: d.ttlMs,
    graceMs: d.graceMs,
    retentionMs: d.retentionMs,
    policy: { ...d.policy },
    credentialsDigest: "",
    createdAt: iso(env.now),
    members: [],
    updatedAt: iso(env.now),
  };
  syncRecord(rec, d);
  setDisk(rec, d);
  // Renamed in already preparing: the invited → preparing step costs no write of its own.
  rec.state = transition(d.name, rec.state, "preparing");
  // The members, in their declared order; those with a command are recorded "starting", each with
  // its spawn id, before any exists: a crash before a spawn finds no process by that id and starts
  // it anew (as after a crash between a "starting" save and its spawn).
  for (const dm of d.members) {
    if (dm.role === "substitute") continue;
    const m = newMember(dm, env);
    if (dm.command) {
      m.status = "starting";
      m.spawnId = newId();
      minted.add(m.spawnId);
    }
    rec.members.push(m);
  }
  // The manifest and the record are new files in a directory nobody else can see: written in
  // place (no temp file, no rename), fsync'd, their directories too, then the whole tree is renamed in.
  await writeCredentials(sp, rec, d.credentials, env, { cell: d.name, values, inPlace: true });
  const text = recordText(rec, env);
  await writeInPlace(sp.record, text);
  await Promise.all([syncDir(sp.secrets), syncDir(sp.meta)]);
  await syncDir(staging);
  return { rec, text };
}

// What the fresh path of create wrote in the staging directory: the record and its text as saved
// (the first member's spawn needs no "starting" save of its own while the record is still exactly
// this), and the spawn ids it minted (no process has any of them).
interface Staged {
  rec?: CellRecord;
  text?: string;
  minted: Set<string>;
}

// invited → preparing → active: layout, credentials, member processes.
export async function create(a: Extract<Action, { kind: "create" }>, env: ApplyEnv): Promise<Details> {
  const d = a.desired;
  const dir = path.join(env.paths.cells, d.name);
  const cp_ = cellPaths(dir);
  const values = await resolveCredentials(d.name, d.credentials, env); // fail before building anything
  const staged: Staged = a.resume ? { minted: new Set() } : await createStaged(dir, d, values, env);
  const rec = staged.rec ?? (await loadRecord(cp_));
  if (rec.state === "invited") {
    rec.state = transition(d.name, rec.state, "preparing");
    await saveRecord(cp_, rec, env);
  }
  if (rec.state !== "preparing") throw new BugError(`create of ${d.name} found state ${rec.state}`);
  if (a.resume) {
    await recordPlanted(
      cp_,
      env,
      await ensureLayout(
        cp_,
        d.members.map((m) => m.home),
      ),
    );
    await writeCredentials(cp_, rec, d.credentials, env, { values });
  }
  syncRecord(rec, d);
  rec.ttlMs = d.ttlMs;
  const backend = backendOf(env, rec);
  await prepareCreated(cp_, rec, a, backend, env);
  failpoint("create:prepared");
  if (rec.progress) await startClock(cp_, env.now, false); // the baseline, before any member runs
  await startCreated(cp_, rec, d, backend, staged, env);
  rec.members = rec.members.filter((m) =>
    d.members.some((dm) => dm.identity === m.identity && dm.role !== "substitute"),
  );
  await pruneVenvs(cp_.dir, rec.python?.digest);
  rec.state = transition(d.name, rec.state, "active");
  rec.activatedAt = iso(env.now);
  rec.expiresAt = iso(env.now + d.ttlMs);
  await saveRecord(cp_, rec, env);
  await decide(cp_, env, {
    decision: "create",
    reason: a.reason,
    members: rec.members.map((m) => `${m.identity}/${m.role}`),
  });
  return {
    uid: rec.uid,
    ...(rec.restoredFrom ? { restoredFrom: rec.restoredFrom } : {}),
    members: rec.members.map((m) => ({
      identity: m.identity,
      role: m.role,
      status: m.status,
      ...(m.pid ? { pid: m.pid } : {}),
    })),
  };
}

// A new cell's tree built in a staging directory and renamed into place whole (stageCell).
async function createStaged(
  dir: string,
  d: DesiredCell,
  values: Record<string, string>,
  env: ApplyEnv,
): Promise<Required<Staged>> {
  if (await exists(dir))
    throw new LazarusError("CELL_EXISTS", `cannot create cell ${d.name}: ${dir} already exists; move it away`);
  await mkdir(env.paths.cells, { recursive: true });
  const staging = path.join(env.paths.cells, `.staging-${d.name}-${newId()}`);
  const minted = new Set<string>();
  let built: { rec: CellRecord; text: string };
  try {
    built = await stageCell(staging, d, values, env, minted);
    failpoint("create:before-rename");
    await rename(staging, dir);
  } catch (err) {
    // Out of space (or any failure) before the rename: the half-made tree goes now, its empty
    // record and credential manifest with it, not at the next run's sweep. (A crash leaves it
    // to that sweep.)
    await rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
  await syncDir(env.paths.cells);
  failpoint("create:after-rename");
  return { rec: built.rec, text: built.text, minted };
}

// The backend prepares the new cell, its venv is built (before any member starts: they run in
// it), and its checkpoint is restored when it starts from one.
async function prepareCreated(
  cp_: CellPaths,
  rec: CellRecord,
  a: Extract<Action, { kind: "create" }>,
  backend: Backend,
  env: ApplyEnv,
): Promise<void> {
  await backend.prepareCell(rec, cp_.dir);
  await applyPython(rec, cp_.dir, a.desired.python, env); // before any member starts: they run in it
  // No save here: what prepare recorded is saved with the first member's "starting" record (before
  // any process exists) or with the final one; a crash before either redoes the idempotent steps.
  if (a.restore && !rec.restoredFrom) {
    await saveRecord(cp_, rec, env);
    await backend.restore(rec, cp_.dir, a.restore, CHECKPOINT_DIRS);
    rec.restoredFrom = path.basename(a.restore);
    await saveRecord(cp_, rec, env);
  }
}

// The declared members, in order: those with a command started (unless already running), the
// others invited; substitutes join only while the member they replace is down.
async function startCreated(
  cp_: CellPaths,
  rec: CellRecord,
  d: DesiredCell,
  backend: Backend,
  staged: Staged,
  env: ApplyEnv,
): Promise<void> {
  let first = true; // no process of this cell has run yet
  for (const dm of d.members) {
    if (dm.role === "substitute") continue; // joins only while the member it replaces is down
    let m = rec.members.find((x) => x.identity === dm.identity);
    if (!m) {
      m = newMember(dm, env);
      rec.members.push(m);
    }
    if (m.status === "running" && backend.isAlive(memberRef(rec.name, m))) continue;
    await writePortfolio(cp_, rec, m, dm, env);
    // The record after the spawn is saved by the next member's "starting" save or the final one;
    // a crash before that leaves "starting" with the spawn id, by which the next run finds it.
    if (dm.command) {
      // Fresh, and nothing recorded since the staging record: that record already says "starting"
      // with this spawn id, and the tree arrived whole by rename with nothing run in it since.
      const isMinted = m.status === "starting" && m.spawnId !== undefined && staged.minted.has(m.spawnId);
      const announced = isMinted && first && recordText(rec, env) === staged.text;
      await startMember(cp_, rec, m, env, { saveAfter: false, minted: isMinted, announced });
      first = false;
    } else if (m.status !== "invited") {
      await inviteMember(cp_, m, d.inviteTtlMs, env);
      await saveRecord(cp_, rec, env);
    }
  }
}

export async function renew(a: Extract<Action, { kind: "renew" }>, env: ApplyEnv): Promise<Details> {
  const cp_ = liveCell(env, a.cell);
  const rec = await loadRecord(cp_);
  rec.ttlMs = a.ttlMs;
  rec.expiresAt = a.expiresAt;
  await saveRecord(cp_, rec, env);
  await decide(cp_, env, { decision: "renew", reason: a.reason, expiresAt: a.expiresAt });
  return { ttlMs: a.ttlMs, expiresAt: a.expiresAt };
}

export async function update(a: Extract<Action, { kind: "update" }>, env: ApplyEnv): Promise<Details> {
  const cp_ = liveCell(env, a.cell);
  const rec = await loadRecord(cp_);
  const wasBrokered = JSON.stringify(rec.brokered ?? []);
  const judged = rec.progress !== undefined;
  syncRecord(rec, a.desired);
  // A progress clock starts when progress is declared (a new slice or onStall keeps it running).
  if (a.fields.includes("progress") && rec.progress) await startClock(cp_, env.now, !judged);
  // What each field's change does is its row's in src/cells/fields.ts; the steps of their own:
  if (a.fields.includes("credentials")) await writeCredentials(cp_, rec, a.desired.credentials, env);
  // The model gateway now holds other credentials (the operator's table or LAZARUS_GATEWAY
  // changed): members learn the gateway only when they start, so the running ones restart below.
  const rebroker = wasBrokered !== JSON.stringify(rec.brokered ?? []);
  if (rebroker)
    for (const dm of a.desired.members)
      if (dm.resolvedPortfolio) await setGatewayPortfolio(gatewayOf(env), rec, dm, dm.resolvedPortfolio.document);
  // The backend prepares the cell again: a changed egress list reaches its proxy (or policy), a
  // kubernetes cell's own objects (NetworkPolicy, claim, Secret) follow its spec, members keep running.
  if (updatePrepares(a.fields)) await backendOf(env, rec).prepareCell(rec, cp_.dir);
  if (a.fields.includes("disk")) await updateDisk(cp_, rec, a.desired, env);
  if (a.fields.includes("budget")) await syncGatewayBudget(gatewayOf(env), rec);
  // A new venv is built while members still run in the old one (a failure leaves them so).
  const venvChanged = a.fields.includes("python") && (await applyPython(rec, cp_.dir, a.desired.python, env));
  if (updateRestarts(a.fields) || venvChanged || rebroker) {
    // A member's network namespace, container image and environment are fixed when it starts:
    // restart the running ones into the new ones.
    await saveRecord(cp_, rec, env);
    for (const m of rec.members) {
      if (!m.command || !backendOf(env, rec).isAlive(memberRef(rec.name, m))) continue;
      await stopMember(rec, m, env);
      m.restarts += 1;
      await startMember(cp_, rec, m, env);
    }
  }
  await saveRecord(cp_, rec, env);
  if (a.fields.includes("python")) await pruneVenvs(cp_.dir, rec.python?.digest);
  await decide(cp_, env, { decision: "update", fields: a.fields, reason: a.reason });
  return { fields: a.fields };
}

// The disk quota of a live cell: mounted again, or (a new quota, a larger one) changed with
// nothing of the cell running: its files moved onto a new image, or the image grown offline
// (online growth needs CAP_SYS_RESOURCE, which some hosts' root lacks). Members stop, then start.
async function updateDisk(cp_: CellPaths, rec: CellRecord, d: DesiredCell, env: ApplyEnv): Promise<void> {
  const backend = backendOf(env, rec);
  const wanted = d.disk?.enforced ? d.disk.bytes : undefined;
  if (wanted === undefined || (rec.disk !== undefined && wanted <= rec.disk.bytes)) {
    await backend.placeData?.(rec, cp_.dir);
    return;
  }
  const running = rec.members.filter((m) => m.command && backend.isAlive(memberRef(rec.name, m)));
  for (const m of running) await stopMember(rec, m, env);
  const survivors = await backend.stopCell(rec);
  if (survivors.length)
    throw new LazarusError(
      "STOP_FAILED",
      `cell ${rec.name}: processes ${survivors.join(", ")} survived SIGKILL; its disk stays as it is`,
    );
  rec.disk = { bytes: wanted };
  await saveRecord(cp_, rec, env);
  await backend.prepareCell(rec, cp_.dir);
  for (const m of running) {
    m.restarts += 1;
    await startMember(cp_, rec, m, env);
  }
}

// Stop every member, write the close log, then move the cell into the graveyard.
export async function close(a: Extract<Action, { kind: "close" }>, env: ApplyEnv): Promise<Details> {
  const cp_ = liveCell(env, a.cell);
  const rec = await loadRecord(cp_);
  if (rec.state !== "closed") {
    for (const m of rec.members) await stopMember(rec, m, env);
    const survivors = await backendOf(env, rec).stopCell(rec);
    if (survivors.length)
      throw new LazarusError(
        "STOP_FAILED",
        `cell ${a.cell}: processes ${survivors.join(", ")} survived SIGKILL; the cell stays open until they are gone`,
      );
    await backendOf(env, rec).collectLogs?.(rec, cp_.logs);
    await forgetGatewayCell(gatewayOf(env), rec.name, rec.uid); // its tokens are refused from now on
    failpoint("close:stopped");
    rec.state = transition(a.cell, rec.state, "closed");
    rec.closedAt = iso(env.now);
    rec.closeReason = a.closeReason;
    rec.closedDigest = a.desiredDigest;
    await guardCell(cp_, env);
    await writeJsonAtomic(cp_.closeLog, {
      cell: rec.name,
      project: rec.project,
      createdAt: rec.createdAt,
      closedAt: rec.closedAt,
      reason: a.closeReason,
      ...(rec.checkpointRefused ? { checkpointRefused: rec.checkpointRefused } : {}),
      members: rec.members.map((m) => ({ identity: m.identity, role: m.role, status: m.status, restarts: m.restarts })),
      checkpoints: (await listCheckpoints(cp_.checkpoints)).map((c) => c.name),
      projectChanges: await projectChanges(cp_.project, Date.parse(rec.createdAt)),
      ...(await progressForCloseLog(cp_)),
      ...(rec.network === "egress"
        ? { egressReached: await reachedHosts(eventsFile(path.dirname(env.paths.ledger)), rec.name, rec.createdAt) }
        : {}),
    });
    await saveRecord(cp_, rec, env);
    await writeTombstone(env.paths, { cell: a.cell, closedAt: rec.closedAt, closedDigest: rec.closedDigest ?? null });
    await decide(cp_, env, { decision: "close", reason: a.reason });
    failpoint("close:recorded");
  }
  await mkdir(env.paths.graveyard, { recursive: true });
  const target = path.join(env.paths.graveyard, a.cell);
  if (await exists(target))
    throw new LazarusError(
      "GRAVEYARD_TAKEN",
      `cannot close cell ${a.cell} into the graveyard: ${target} already exists; move it away`,
    );
  await moveDir(cp_.dir, target);
  return {
    closedAt: rec.closedAt,
    reason: a.closeReason,
    ...(rec.checkpointRefused ? { checkpointRefused: rec.checkpointRefused.error } : {}),
  };
}

// rename, or copy then delete when the graveyard is on another filesystem.
async function moveDir(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    if (!isErrno(err, "EXDEV")) throw err;
    const tmp = `${to}.moving`;
    await rm(tmp, { recursive: true, force: true });
    await cp(from, tmp, { recursive: true, verbatimSymlinks: true });
    await rename(tmp, to);
    await rm(from, { recursive: true, force: true });
  }
}

// closed → active within grace: the files are kept, the members start again.
export async function resurrect(a: Extract<Action, { kind: "resurrect" }>, env: ApplyEnv): Promise<Details> {
  const d = a.desired;
  const dir = path.join(env.paths.cells, a.cell);
  const grave = path.join(env.paths.graveyard, a.cell);
  if (!(await exists(dir))) {
    await mkdir(env.paths.cells, { recursive: true });
    await moveDir(grave, dir);
  }
  failpoint("resurrect:moved");
  const cp_ = cellPaths(dir);
  const rec = await loadRecord(cp_);
  if (rec.state === "closed") {
    rec.state = transition(a.cell, rec.state, "active");
    rec.life = newId(); // a new life: its own spawn and close comments (src/forge/)
    delete rec.closedAt;
    delete rec.closeReason;
    delete rec.closedDigest;
  }
  syncRecord(rec, d);
  rec.ttlMs = d.ttlMs;
  rec.activatedAt = iso(env.now);
  rec.expiresAt = iso(env.now + d.ttlMs);
  await recordPlanted(
    cp_,
    env,
    await ensureLayout(
      cp_,
      d.members.map((m) => m.home),
    ),
  );
  await writeCredentials(cp_, rec, d.credentials, env);
  await backendOf(env, rec).prepareCell(rec, cp_.dir);
  await applyPython(rec, cp_.dir, d.python, env);
  await saveRecord(cp_, rec, env);
  // Members as declared now; a changed role means a new member record.
  const kept: MemberRecord[] = [];
  for (const dm of d.members) {
    if (dm.role === "substitute") continue;
    const old = rec.members.find((x) => x.identity === dm.identity && x.role === dm.role);
    const m = old ?? newMember(dm, env);
    syncMember(m, dm);
    await writePortfolio(cp_, rec, m, dm, env);
    kept.push(m);
  }
  rec.members = kept;
  for (const m of rec.members) {
    if (m.status === "running" && backendOf(env, rec).isAlive(memberRef(rec.name, m))) continue;
    if (m.command) await startMember(cp_, rec, m, env);
    else if (m.status !== "joined") await inviteMember(cp_, m, d.inviteTtlMs, env);
  }
  await saveRecord(cp_, rec, env);
  await pruneVenvs(cp_.dir, rec.python?.digest);
  if (rec.progress) await startClock(cp_, env.now, true);
  await decide(cp_, env, { decision: "resurrect", reason: a.reason });
  return { expiresAt: rec.expiresAt, members: rec.members.map((m) => ({ identity: m.identity, pid: m.pid })) };
}

// After retention: delete the archive entry (and its day folder once empty).
export async function purge(a: Extract<Action, { kind: "purge" }>, env: ApplyEnv): Promise<Details> {
  const rel = path.relative(env.paths.archive, a.dir);
  if (rel.startsWith("..") || path.isAbsolute(rel)) throw new BugError(`purge of ${a.dir} outside the archive`);
  // Keep how it closed past the purge (state dirs from before tombstones have none yet).
  const purged = await readJson<CellRecord>(path.join(a.dir, "cell.json")).catch(() => undefined);
  const kept = await readTombstone(env.paths, a.cell);
  if (purged?.closedAt && (!kept || Date.parse(kept.closedAt) < Date.parse(purged.closedAt))) {
    await writeTombstone(env.paths, {
      cell: a.cell,
      closedAt: purged.closedAt,
      closedDigest: purged.closedDigest ?? null,
    });
  }
  await rm(a.dir, { recursive: true, force: true });
  const dayDir = path.dirname(a.dir);
  if ((await readdir(dayDir).catch(() => ["?"])).length === 0) await rm(dayDir, { recursive: true, force: true });
  return { archive: a.dir };
}

// No executor is up: active → downed.
export async function cellDown(a: Extract<Action, { kind: "cell-down" }>, env: ApplyEnv): Promise<Details> {
  const cp_ = liveCell(env, a.cell);
  const rec = await loadRecord(cp_);
  rec.state = transition(a.cell, rec.state, "downed");
  rec.downedAt = iso(env.now);
  await saveRecord(cp_, rec, env);
  await decide(cp_, env, { decision: "cell-down", reason: a.reason });
  return { downedAt: rec.downedAt };
}

// The cell's disk quota was reached, or it has room again: recorded (status shows it) and decided.
export async function diskFull(a: Extract<Action, { kind: "disk-full" }>, env: ApplyEnv): Promise<Details> {
  const cp_ = liveCell(env, a.cell);
  const rec = await loadRecord(cp_);
  if (a.reached) rec.diskFull = { since: iso(env.now), avail: a.avail };
  else delete rec.diskFull;
  await saveRecord(cp_, rec, env);
  await decide(cp_, env, { decision: "disk-full", reached: a.reached, reason: a.reason });
  return { reached: a.reached, avail: a.avail, bytes: a.bytes };
}

// An executor is up again: downed → active.
export async function revive(a: Extract<Action, { kind: "revive" }>, env: ApplyEnv): Promise<Details> {
  const cp_ = liveCell(env, a.cell);
  const rec = await loadRecord(cp_);
  rec.state = transition(a.cell, rec.state, "active");
  const was = rec.downedAt;
  delete rec.downedAt;
  await saveRecord(cp_, rec, env);
  await decide(cp_, env, { decision: "revive", reason: a.reason });
  return { downedSince: was };
}

// Files changed in project/ since the cell was created: from git when project/ is a repository,
// else by modification time.
// git never runs anything the member configured (see member-git.ts); gitSkipped says why it was not used.
export async function projectChanges(
  project: string,
  since: number,
): Promise<{ source: "git" | "mtime"; files: string[]; commits?: string[]; branch?: string; gitSkipped?: string }> {
  const refused = (await exists(path.join(project, ".git"))) ? await gitRefusal(project) : "no repository";
  if (!refused) {
    try {
      const status = { stdout: await memberGit(project, STATUS_ARGS) };
      const log = { stdout: await memberGit(project, [...LOG_ARGS, `--since=${new Date(since).toISOString()}`]) };
      const commits = log.stdout.split("\n").filter((l) => /^[0-9a-f]{40} /.test(l));
      const files = new Set([
        ...status.stdout
          .split("\n")
          .filter(Boolean)
          .map((l) => l.slice(3)),
        ...log.stdout.split("\n").filter((l) => l && !/^[0-9a-f]{40} /.test(l)),
      ]);
      const branch = (await memberGit(project, BRANCH_ARGS).catch(() => "")).trim();
      return { source: "git", files: [...files].sort(), commits, ...(branch && branch !== "HEAD" ? { branch } : {}) };
    } catch {
      // fall back to modification times
    }
  }
  const files: string[] = [];
  const visit = async (rel: string): Promise<void> => {
    const abs = path.join(project, rel);
    const st = await lstat(abs).catch(() => undefined);
    if (!st) return;
    if (st.isDirectory()) {
      for (const e of await readdir(abs)) if (!(rel === "" && e === ".git")) await visit(path.join(rel, e));
    } else if (st.mtimeMs >= since) files.push(rel);
  };
  await visit("");
  return {
    source: "mtime",
    files: files.sort(),
    ...(refused && refused !== "no repository" ? { gitSkipped: refused } : {}),
  };
}
