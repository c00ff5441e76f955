// The side effects of each action, each written so that running it again after a crash at any
// point finishes the job instead of repeating or corrupting it.
import { randomBytes } from "node:crypto";
import { cp, lstat, mkdir, readdir, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Backend } from "../backends/backend.js";
import { ARCHIVED_RECORDS, cellPaths, memberHome, memberLog, type CellPaths, type StatePaths } from "../cells/layout.js";
import { transition } from "../cells/lifecycle.js";
import { RECORD_FORMAT, type CellRecord, type MemberRecord } from "../cells/record.js";
import { canonicalJson, credentialsDigest } from "../config/digest.js";
import type { DesiredCell, DesiredMember } from "../config/types.js";
import type { Action } from "../plan/actions.js";
import { appendLine, readJson, writeJsonAtomic } from "../util/fsx.js";
import { BugError, LazarusError, isErrno } from "../util/errors.js";
import { failpoint } from "../util/failpoint.js";
import { resolveCredentials, writeCredentials } from "./credentials.js";

export interface ApplyEnv {
  paths: StatePaths;
  configDir: string;
  backend: Backend;
  hostEnv: NodeJS.ProcessEnv;
  now: number;
  stopTimeoutMs: number;
}

// What an applied action leaves for the ledger (never a secret).
export type Details = Record<string, unknown>;

const iso = (ms: number): string => new Date(ms).toISOString();
const newId = (): string => randomBytes(8).toString("hex");

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch (err) {
    if (isErrno(err, "ENOENT")) return false;
    throw err;
  }
}

async function loadRecord(cp_: CellPaths): Promise<CellRecord> {
  const rec = await readJson<CellRecord>(cp_.record);
  if (!rec) throw new LazarusError("RECORD_MISSING", `${cp_.record} is missing`);
  return rec;
}

async function saveRecord(cp_: CellPaths, rec: CellRecord, env: ApplyEnv): Promise<void> {
  rec.updatedAt = iso(env.now);
  await writeJsonAtomic(cp_.record, rec);
}

async function decide(cp_: CellPaths, env: ApplyEnv, entry: Record<string, unknown>): Promise<void> {
  await appendLine(cp_.decisions, JSON.stringify({ time: iso(env.now), by: "lazarus", ...entry }));
}

// Directories of spec §6, created if missing; existing files are never touched.
async function ensureLayout(cp_: CellPaths, homes: string[]): Promise<void> {
  for (const d of [cp_.meta, cp_.checkpoints, cp_.logs, cp_.project, cp_.artifacts, cp_.homes, ...homes.map((h) => memberHome(cp_, h))]) {
    await mkdir(d, { recursive: true });
  }
  for (const f of [cp_.scratchpad, cp_.decisions, cp_.spawnLog]) {
    await writeFile(f, "", { flag: "a" });
  }
}

function syncFromDesired(rec: CellRecord, d: DesiredCell): void {
  rec.labels = { ...d.labels };
  rec.owner = d.owner;
  rec.graceMs = d.graceMs;
  rec.retentionMs = d.retentionMs;
  rec.policy = { ...d.policy };
  rec.sourceFile = d.source.file;
  rec.credentialsDigest = credentialsDigest(d.credentials);
}

function newMember(dm: DesiredMember, env: ApplyEnv): MemberRecord {
  return {
    identity: dm.identity,
    home: dm.home,
    role: dm.role,
    ...(dm.command ? { command: [...dm.command] } : {}),
    env: { ...dm.env },
    status: "joined",
    restarts: 0,
    joinedAt: iso(env.now),
  };
}

// Start (or, after a crash mid-start, find) the member's process and record it.
// The record is saved as "starting" with a spawnId before the spawn, so a crash between the
// spawn and the next save leaves a process that the next run can find by that id.
async function startMember(cp_: CellPaths, rec: CellRecord, m: MemberRecord, env: ApplyEnv): Promise<void> {
  if (!m.command) {
    m.status = "joined";
    delete m.pid;
    delete m.startTime;
    return;
  }
  if (m.status === "starting" && m.spawnId) {
    const found = env.backend.find(m.spawnId);
    if (found) {
      Object.assign(m, { status: "running", pid: found.pid, startTime: found.startTime });
      await saveRecord(cp_, rec, env);
      return;
    }
  }
  m.status = "starting";
  m.spawnId = newId();
  delete m.pid;
  delete m.startTime;
  await saveRecord(cp_, rec, env);
  failpoint("member:before-spawn");
  const started = await env.backend.start({
    cell: rec.name,
    cellDir: cp_.dir,
    identity: m.identity,
    home: memberHome(cp_, m.home),
    role: m.role,
    command: resolveCommand(m.command, env.configDir),
    env: m.env,
    credentialsFile: cp_.credentials,
    logFile: memberLog(cp_, m.home),
    spawnId: m.spawnId,
  });
  failpoint("member:after-spawn");
  m.pid = started.pid;
  m.startedAt = iso(env.now);
  if (started.startTime === undefined) {
    m.status = "exited";
    m.exitedAt = iso(env.now);
  } else {
    m.status = "running";
    m.startTime = started.startTime;
  }
  await appendLine(cp_.spawnLog, JSON.stringify({ time: iso(env.now), cell: rec.name, member: m.identity, role: m.role, backend: rec.backend, pid: m.pid, command: m.command }));
  await saveRecord(cp_, rec, env);
}

// Arguments that start with ./ or ../ are paths relative to the config dir (as in compose files).
export function resolveCommand(command: string[], configDir: string): string[] {
  return command.map((a) => (a.startsWith("./") || a.startsWith("../") ? path.resolve(configDir, a) : a));
}

async function stopMember(m: MemberRecord, env: ApplyEnv): Promise<void> {
  if (m.status === "starting" && m.spawnId) {
    const found = env.backend.find(m.spawnId);
    if (found) await env.backend.stop(found.pid, found.startTime, env.stopTimeoutMs);
  }
  if (m.pid && env.backend.isAlive(m.pid, m.startTime)) await env.backend.stop(m.pid, m.startTime, env.stopTimeoutMs);
  if (m.command) {
    m.status = "exited";
    m.exitedAt = iso(env.now);
  }
}

// invited → preparing → active: layout, credentials, member processes.
export async function create(a: Extract<Action, { kind: "create" }>, env: ApplyEnv): Promise<Details> {
  const d = a.desired;
  const dir = path.join(env.paths.cells, d.name);
  const cp_ = cellPaths(dir);
  await resolveCredentials(d.name, d.credentials, env.configDir, env.hostEnv); // fail before building anything
  if (!a.resume) {
    if (await exists(dir)) throw new LazarusError("CELL_EXISTS", `cannot create cell ${d.name}: ${dir} already exists; move it away`);
    await mkdir(env.paths.cells, { recursive: true });
    const staging = path.join(env.paths.cells, `.staging-${d.name}-${newId()}`);
    const sp = cellPaths(staging);
    await mkdir(sp.meta, { recursive: true });
    const rec: CellRecord = {
      formatVersion: RECORD_FORMAT,
      uid: newId(),
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
    syncFromDesired(rec, d);
    await writeJsonAtomic(sp.record, rec);
    failpoint("create:before-rename");
    await rename(staging, dir);
    failpoint("create:after-rename");
  }
  const rec = await loadRecord(cp_);
  if (rec.state === "invited") {
    rec.state = transition(d.name, rec.state, "preparing");
    await saveRecord(cp_, rec, env);
  }
  if (rec.state !== "preparing") throw new BugError(`create of ${d.name} found state ${rec.state}`);
  await ensureLayout(cp_, d.members.map((m) => m.home));
  await writeCredentials(cp_.credentials, d.name, d.credentials, env.configDir, env.hostEnv);
  syncFromDesired(rec, d);
  rec.ttlMs = d.ttlMs;
  failpoint("create:prepared");
  for (const dm of d.members) {
    let m = rec.members.find((x) => x.identity === dm.identity);
    if (!m) {
      m = newMember(dm, env);
      rec.members.push(m);
    }
    if (m.status === "running" && env.backend.isAlive(m.pid, m.startTime)) continue;
    await startMember(cp_, rec, m, env);
  }
  rec.members = rec.members.filter((m) => d.members.some((dm) => dm.identity === m.identity));
  rec.state = transition(d.name, rec.state, "active");
  rec.activatedAt = iso(env.now);
  rec.expiresAt = iso(env.now + d.ttlMs);
  await saveRecord(cp_, rec, env);
  await decide(cp_, env, { decision: "create", reason: a.reason, members: rec.members.map((m) => `${m.identity}/${m.role}`) });
  return { uid: rec.uid, members: rec.members.map((m) => ({ identity: m.identity, role: m.role, pid: m.pid })) };
}

function liveCell(env: ApplyEnv, name: string): CellPaths {
  return cellPaths(path.join(env.paths.cells, name));
}

export async function invite(a: Extract<Action, { kind: "invite" }>, env: ApplyEnv): Promise<Details> {
  const cp_ = liveCell(env, a.cell);
  const rec = await loadRecord(cp_);
  await mkdir(memberHome(cp_, a.desiredMember.home), { recursive: true });
  let m = rec.members.find((x) => x.identity === a.member);
  if (!m) {
    m = newMember(a.desiredMember, env);
    rec.members.push(m);
  }
  await startMember(cp_, rec, m, env);
  await saveRecord(cp_, rec, env);
  await decide(cp_, env, { decision: "invite", member: a.member, role: m.role, reason: a.reason });
  return { member: a.member, role: m.role, pid: m.pid };
}

export async function removeMember(a: Extract<Action, { kind: "remove-member" }>, env: ApplyEnv): Promise<Details> {
  const cp_ = liveCell(env, a.cell);
  const rec = await loadRecord(cp_);
  const m = rec.members.find((x) => x.identity === a.member);
  if (m) await stopMember(m, env);
  rec.members = rec.members.filter((x) => x.identity !== a.member);
  await saveRecord(cp_, rec, env);
  await decide(cp_, env, { decision: "remove-member", member: a.member, reason: a.reason });
  return { member: a.member, role: m?.role };
}

export async function restart(a: Extract<Action, { kind: "restart" }>, env: ApplyEnv): Promise<Details> {
  const cp_ = liveCell(env, a.cell);
  const rec = await loadRecord(cp_);
  const m = rec.members.find((x) => x.identity === a.member);
  if (!m) throw new LazarusError("MEMBER_MISSING", `cell ${a.cell} has no member ${a.member} to restart`);
  const dm = a.desiredMember;
  const sameSpec = canonicalJson(m.command ?? null) === canonicalJson(dm.command ?? null) && canonicalJson(m.env) === canonicalJson(dm.env);
  // A spawn interrupted by a crash may have left the wanted process running: adopt it.
  if (!(sameSpec && m.status === "starting")) {
    await stopMember(m, env);
    if (dm.command) m.command = [...dm.command];
    else delete m.command;
    m.env = { ...dm.env };
    m.restarts += 1;
    await saveRecord(cp_, rec, env);
  }
  await startMember(cp_, rec, m, env);
  await decide(cp_, env, { decision: "restart", member: a.member, reason: a.reason, pid: m.pid });
  return { member: a.member, pid: m.pid, restarts: m.restarts };
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
  if (a.fields.includes("credentials")) await writeCredentials(cp_.credentials, a.cell, a.desired.credentials, env.configDir, env.hostEnv);
  syncFromDesired(rec, a.desired);
  await saveRecord(cp_, rec, env);
  await decide(cp_, env, { decision: "update", fields: a.fields, reason: a.reason });
  return { fields: a.fields };
}

// Stop every member, write the close log, then move the cell into the graveyard.
export async function close(a: Extract<Action, { kind: "close" }>, env: ApplyEnv): Promise<Details> {
  const cp_ = liveCell(env, a.cell);
  const rec = await loadRecord(cp_);
  if (rec.state !== "closed") {
    for (const m of rec.members) await stopMember(m, env);
    failpoint("close:stopped");
    rec.state = transition(a.cell, rec.state, "closed");
    rec.closedAt = iso(env.now);
    rec.closeReason = a.closeReason;
    rec.closedDigest = a.desiredDigest;
    await writeJsonAtomic(cp_.closeLog, {
      cell: rec.name,
      project: rec.project,
      closedAt: rec.closedAt,
      reason: a.closeReason,
      createdAt: rec.createdAt,
      members: rec.members.map((m) => ({ identity: m.identity, role: m.role, restarts: m.restarts })),
    });
    await saveRecord(cp_, rec, env);
    await decide(cp_, env, { decision: "close", reason: a.reason });
    failpoint("close:recorded");
  }
  await mkdir(env.paths.graveyard, { recursive: true });
  const target = path.join(env.paths.graveyard, a.cell);
  if (await exists(target)) throw new LazarusError("GRAVEYARD_TAKEN", `cannot close cell ${a.cell} into the graveyard: ${target} already exists; move it away`);
  await moveDir(cp_.dir, target);
  return { closedAt: rec.closedAt, reason: a.closeReason };
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
    delete rec.closedAt;
    delete rec.closeReason;
    delete rec.closedDigest;
  }
  syncFromDesired(rec, d);
  rec.ttlMs = d.ttlMs;
  rec.activatedAt = iso(env.now);
  rec.expiresAt = iso(env.now + d.ttlMs);
  await ensureLayout(cp_, d.members.map((m) => m.home));
  await writeCredentials(cp_.credentials, a.cell, d.credentials, env.configDir, env.hostEnv);
  await saveRecord(cp_, rec, env);
  // Members as declared now; a changed role means a new member record.
  const kept: MemberRecord[] = [];
  for (const dm of d.members) {
    const old = rec.members.find((x) => x.identity === dm.identity && x.role === dm.role);
    const m = old ?? newMember(dm, env);
    if (dm.command) m.command = [...dm.command];
    else delete m.command;
    m.env = { ...dm.env };
    kept.push(m);
  }
  rec.members = kept;
  for (const m of rec.members) {
    if (m.status === "running" && env.backend.isAlive(m.pid, m.startTime)) continue;
    await startMember(cp_, rec, m, env);
  }
  await saveRecord(cp_, rec, env);
  await decide(cp_, env, { decision: "resurrect", reason: a.reason });
  return { expiresAt: rec.expiresAt, members: rec.members.map((m) => ({ identity: m.identity, pid: m.pid })) };
}

// After grace: copy the records to the archive, then delete the graveyard copy. fs.rm removes
// symbolic links themselves and never what they point at, so nothing outside the cell is touched.
export async function scrub(a: Extract<Action, { kind: "scrub" }>, env: ApplyEnv): Promise<Details> {
  const grave = path.join(env.paths.graveyard, a.cell);
  const gp = cellPaths(grave);
  const rec = await loadRecord(gp);
  for (const m of rec.members) await stopMember(m, env);
  let archived = await findArchive(env.paths.archive, a.cell, rec.uid);
  if (!archived) {
    const day = iso(env.now).slice(0, 10);
    const dayDir = path.join(env.paths.archive, day);
    await mkdir(dayDir, { recursive: true });
    let target = path.join(dayDir, a.cell);
    if (await exists(target)) target = path.join(dayDir, `${a.cell}~${rec.uid.slice(0, 8)}`);
    const tmp = path.join(dayDir, `.tmp-${a.cell}-${rec.uid}`);
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    for (const item of ARCHIVED_RECORDS) {
      const from = path.join(gp.meta, item);
      if (!(await exists(from))) continue;
      await cp(from, path.join(tmp, item), { recursive: true, filter: async (src) => !(await lstat(src)).isSymbolicLink() });
    }
    const archivedRec: CellRecord = { ...rec, state: transition(a.cell, rec.state, "archived"), archivedAt: iso(env.now) };
    archivedRec.updatedAt = iso(env.now);
    await writeJsonAtomic(path.join(tmp, "cell.json"), archivedRec);
    failpoint("scrub:before-archive-rename");
    await rename(tmp, target);
    archived = target;
  }
  failpoint("scrub:archived");
  await rm(grave, { recursive: true, force: true });
  return { archive: archived };
}

// The archive entry of this incarnation, if an earlier, interrupted scrub already wrote it.
async function findArchive(root: string, name: string, uid: string): Promise<string | undefined> {
  let days: string[];
  try {
    days = await readdir(root);
  } catch (err) {
    if (isErrno(err, "ENOENT")) return undefined;
    throw err;
  }
  for (const day of days) {
    let entries: string[];
    try {
      entries = await readdir(path.join(root, day));
    } catch {
      continue;
    }
    for (const e of entries) {
      if (e !== name && !e.startsWith(`${name}~`)) continue;
      const rec = await readJson<CellRecord>(path.join(root, day, e, "cell.json")).catch(() => undefined);
      if (rec?.uid === uid) return path.join(root, day, e);
    }
  }
  return undefined;
}

// After retention: delete the archive entry (and its day folder once empty).
export async function purge(a: Extract<Action, { kind: "purge" }>, env: ApplyEnv): Promise<Details> {
  const rel = path.relative(env.paths.archive, a.dir);
  if (rel.startsWith("..") || path.isAbsolute(rel)) throw new BugError(`purge of ${a.dir} outside the archive`);
  await rm(a.dir, { recursive: true, force: true });
  const dayDir = path.dirname(a.dir);
  if ((await readdir(dayDir).catch(() => ["?"])).length === 0) await rm(dayDir, { recursive: true, force: true });
  return { archive: a.dir };
}
