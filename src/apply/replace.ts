// replace: a cell moves to another backend (or a container cell to another image). Terraform's
// -/+: the old incarnation is closed and a new one created from its latest checkpoint, under the
// same name and in the same cell dir, in one journaled action:
//
//   1. stop every member on the old backend, and whatever of the cell still runs there;
//   2. checkpoint project/, shared/ and home/ with nothing running (nothing written after it);
//   3. switch the record to the new backend and a new incarnation (uid);
//   4. move the old project/, shared/ and home/ aside, lay the cell out for the new backend
//      (its uid owns what it must), restore the checkpoint into it (staged, checked, swapped);
//   5. delete what was moved aside and give back what the old backend held (cgroup, uid,
//      containers);
//   6. start the members on the new backend.
//
// cell.json's `replacing` is written before the first effect and records each step done, so a
// run killed anywhere is finished by the next one (the plan says "resume interrupted
// replacement"): no step is repeated in a way that loses work, none is skipped.
import { mkdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import type { CellPaths } from "../cells/layout.js";
import type { CellRecord, MemberRecord, Replacing } from "../cells/record.js";
import { CHECKPOINT_DIRS, verifyCheckpoint } from "../checkpoints/checkpoint.js";
import type { Action } from "../plan/actions.js";
import type { DesiredCell } from "../config/types.js";
import { LazarusError } from "../util/errors.js";
import { failpoint } from "../util/failpoint.js";
import { memberRef, type Backend } from "../backends/backend.js";
import { applyPython, pruneVenvs } from "../runtime/python/venv.js";
import { checkpointCell } from "./checkpoint.js";
import {
  backendOf,
  decide,
  exists,
  iso,
  liveCell,
  loadRecord,
  newId,
  saveRecord,
  type ApplyEnv,
  type Details,
} from "./context.js";
import { resolveCredentials, writeCredentials } from "./credentials.js";
import { recordPlanted } from "./guard.js";
import { inviteMember, newMember, startMember, stopMember, writePortfolio } from "./members.js";
import { ensureLayout, setDisk } from "./ops.js";
import { syncMember, syncRecord } from "../cells/fields.js";
import { restoreReplacing } from "./restore.js";

// The record as the old incarnation had it: what its backend needs to find and release it.
function oldIncarnation(rec: CellRecord, r: Replacing): CellRecord {
  const old: CellRecord = { ...rec, backend: r.from.backend, uid: r.from.uid };
  delete old.sandbox;
  delete old.containerUid;
  delete old.container;
  if (r.from.sandbox) old.sandbox = r.from.sandbox;
  if (r.from.containerUid) old.containerUid = r.from.containerUid;
  if (r.from.container) old.container = r.from.container;
  return old;
}

// Where the old incarnation's project/, shared/ and home/ wait until the new ones are restored.
const asideDir = (cp: CellPaths, r: Replacing): string => path.join(cp.meta, `replaced-${r.from.uid}`);

type ReplaceAction = Extract<Action, { kind: "replace" }>;

export async function replace(a: ReplaceAction, env: ApplyEnv): Promise<Details> {
  const d = a.desired;
  const cp = liveCell(env, a.cell);
  const rec = await loadRecord(cp);
  await resolveCredentials(d.name, d.credentials, env); // fail before stopping anything
  const r = beginReplacing(rec, d, env);
  await saveRecord(cp, rec, env);
  if (!r.switched) {
    await stopOld(cp, rec, a, env);
    await checkpointOld(cp, rec, r, a, env);
    await switchRecord(cp, rec, r, d, env);
  }
  const checkpoint = path.join(cp.checkpoints, r.checkpoint as string);
  const backend = backendOf(env, rec);
  if (!r.restored) await restoreNew(cp, rec, r, d, { backend, checkpoint }, env);
  if (!r.released) await releaseOld(cp, rec, r, env);
  await startNew(cp, rec, d, backend, env);
  const done = { ...r };
  delete rec.replacing;
  await saveRecord(cp, rec, env);
  await pruneVenvs(cp.dir, rec.python?.digest);
  await decide(cp, env, {
    decision: "replace",
    reason: a.reason,
    from: a.from,
    to: a.to,
    checkpoint: done.checkpoint,
    incarnation: { from: done.from.uid, to: done.uid },
  });
  return {
    from: a.from,
    to: a.to,
    forces: a.forces,
    checkpoint: done.checkpoint,
    incarnation: { from: done.from.uid, to: done.uid },
    ...(rec.sandbox ? { uid: rec.sandbox.uid } : rec.containerUid ? { uid: rec.containerUid.uid } : {}),
    members: rec.members.map((m) => ({ identity: m.identity, status: m.status, ...(m.pid ? { pid: m.pid } : {}) })),
  };
}

// The record's replacement, begun now unless a run before this one began it (not saved here).
// Until the switch, where it goes is the declaration's.
function beginReplacing(rec: CellRecord, d: DesiredCell, env: ApplyEnv): Replacing {
  if (!rec.replacing) {
    rec.replacing = {
      from: {
        backend: rec.backend,
        uid: rec.uid,
        ...(rec.sandbox ? { sandbox: rec.sandbox } : {}),
        ...(rec.containerUid ? { containerUid: rec.containerUid } : {}),
        ...(rec.container ? { container: rec.container } : {}),
      },
      to: { backend: d.backend },
      uid: newId(),
      startedAt: iso(env.now),
    };
  }
  const r = rec.replacing;
  // the declaration wins until the switch
  if (!r.switched) r.to = { backend: d.backend, ...(d.container ? { container: d.container } : {}) };
  return r;
}

// 1. Nothing of the old incarnation runs any more.
async function stopOld(cp: CellPaths, rec: CellRecord, a: ReplaceAction, env: ApplyEnv): Promise<void> {
  for (const m of rec.members) await stopMember(rec, m, env);
  const survivors = await backendOf(env, rec).stopCell(rec);
  if (survivors.length)
    throw new LazarusError(
      "STOP_FAILED",
      `cannot replace cell ${a.cell}: processes ${survivors.join(", ")} survived SIGKILL on backend ${rec.backend}; nothing was moved`,
    );
  await backendOf(env, rec).collectLogs?.(rec, cp.logs); // the new incarnation's logs go on from them
  await saveRecord(cp, rec, env);
  failpoint("replace:stopped");
}

// 2. The checkpoint the new incarnation starts from, taken with nothing running.
async function checkpointOld(
  cp: CellPaths,
  rec: CellRecord,
  r: Replacing,
  a: ReplaceAction,
  env: ApplyEnv,
): Promise<void> {
  if (r.checkpoint) return;
  const file = await checkpointCell(cp, rec, `before replacement ${a.from} → ${a.to}`, env);
  r.checkpoint = path.basename(file);
  await saveRecord(cp, rec, env);
  failpoint("replace:checkpointed");
}

// 3. The record names the new backend and incarnation from here on.
async function switchRecord(
  cp: CellPaths,
  rec: CellRecord,
  r: Replacing,
  d: DesiredCell,
  env: ApplyEnv,
): Promise<void> {
  rec.backend = d.backend;
  rec.uid = r.uid;
  delete rec.sandbox;
  delete rec.containerUid;
  delete rec.containerEngine;
  syncRecord(rec, d);
  setDisk(rec, d);
  r.switched = true;
  await saveRecord(cp, rec, env);
  failpoint("replace:switched");
}

// 4. The old dirs aside (renames: nothing runs that could race them), the cell laid out for
// the new backend, the checkpoint restored into it. A dir already aside stays there: what is
// in the cell then is the new layout or a part of the restore, replaced again below.
async function restoreNew(
  cp: CellPaths,
  rec: CellRecord,
  r: Replacing,
  d: DesiredCell,
  { backend, checkpoint }: { backend: Backend; checkpoint: string },
  env: ApplyEnv,
): Promise<void> {
  await verifyCheckpoint(checkpoint); // refused before anything is moved when it is damaged
  // The old incarnation's disk image goes first (its binds cannot be renamed aside); what was on
  // it is in the checkpoint just verified.
  await backendOf(env, { backend: r.from.backend }).unmount?.(oldIncarnation(rec, r), cp.dir);
  const aside = asideDir(cp, r);
  await mkdir(aside, { recursive: true, mode: 0o700 });
  for (const dir of CHECKPOINT_DIRS) {
    const at = path.join(cp.dir, dir);
    if ((await exists(at)) && !(await exists(path.join(aside, dir)))) await rename(at, path.join(aside, dir));
  }
  failpoint("replace:moved-aside");
  await recordPlanted(
    cp,
    env,
    await ensureLayout(
      cp,
      d.members.map((m) => m.home),
    ),
  );
  // Written anew (its sources were checked above), so no file is left owned by the old uid.
  await rm(cp.credentials, { force: true });
  await writeCredentials(cp, rec, d.credentials, env);
  await backend.prepareCell(rec, cp.dir); // claims the new uid, cgroup; hands the dirs over
  await saveRecord(cp, rec, env);
  await restoreReplacing(backend, rec, cp.dir, checkpoint, CHECKPOINT_DIRS);
  await backend.prepareCell(rec, cp.dir); // each restored home as the new backend wants it
  r.restored = true;
  rec.restoredFrom = r.checkpoint as string;
  await saveRecord(cp, rec, env);
  failpoint("replace:restored");
}

// 5. The old files go (as root: no process of the old incarnation is left to swap a link in;
// fs.rm never follows one), then what the old backend held.
async function releaseOld(cp: CellPaths, rec: CellRecord, r: Replacing, env: ApplyEnv): Promise<void> {
  await rm(asideDir(cp, r), { recursive: true, force: true });
  await backendOf(env, { backend: r.from.backend }).releaseCell(oldIncarnation(rec, r));
  r.released = true;
  await saveRecord(cp, rec, env);
  failpoint("replace:released");
}

// 6. The members, as declared now, on the new backend.
async function startNew(
  cp: CellPaths,
  rec: CellRecord,
  d: DesiredCell,
  backend: Backend,
  env: ApplyEnv,
): Promise<void> {
  await applyPython(rec, cp.dir, d.python, env);
  const kept: MemberRecord[] = [];
  for (const dm of d.members) {
    if (dm.role === "substitute") continue; // joins only while the member it replaces is down
    const m = rec.members.find((x) => x.identity === dm.identity && x.role === dm.role) ?? newMember(dm, env);
    syncMember(m, dm);
    await writePortfolio(cp, rec, m, dm, env); // where the new backend shows it
    kept.push(m);
  }
  rec.members = kept;
  for (const m of rec.members) {
    if (m.status === "running" && backend.isAlive(memberRef(rec.name, m))) continue; // started before a crash
    if (m.command) await startMember(cp, rec, m, env);
    else if (m.status !== "joined" && m.status !== "invited") await inviteMember(cp, m, d.inviteTtlMs, env);
  }
}
