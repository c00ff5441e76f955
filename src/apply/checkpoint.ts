// The checkpoint operation: active → checkpointing → active around a consistent snapshot.
import path from "node:path";
import type { CellPaths } from "../cells/layout.js";
import { transition } from "../cells/lifecycle.js";
import type { CellRecord } from "../cells/record.js";
import { LIMITS } from "../config/types.js";
import type { Action } from "../plan/actions.js";
import { CHECKPOINT_DIRS, rotateCheckpoints, takeCheckpoint } from "../checkpoints/checkpoint.js";
import { backendOf, decide, liveCell, loadRecord, saveRecord, type ApplyEnv, type Details } from "./context.js";
import { markedFreeze } from "./freeze.js";
import { LazarusError } from "../util/errors.js";
import { guardCell } from "./guard.js";

const SAFETY_NAMES_KEPT = 32;

// Snapshot the cell (its processes frozen meanwhile, and thawed even if this process dies), keep
// the newest `keep`.
// A downed cell is snapshotted without a state change (spec §4 has no downed → checkpointing).
// spare: a checkpoint the caller is about to restore, kept through this rotation.
export async function checkpointCell(cp: CellPaths, rec: CellRecord, reason: string, env: ApplyEnv, spare?: string): Promise<string> {
  // Refused before any state change: the cell never waits in checkpointing for what cannot come.
  if (rec.backend === "kubernetes") throw new LazarusError("NOT_SUPPORTED", `cell ${rec.name}: checkpoints of a kubernetes cell are not supported yet (its tree is on the cluster's volume; see docs/kubernetes.md)`);
  if (rec.state === "active") {
    rec.state = transition(rec.name, rec.state, "checkpointing");
    await saveRecord(cp, rec, env);
  }
  await guardCell(cp, env, [cp.checkpoints]);
  const backend = backendOf(env, rec);
  await backend.placeData?.(rec, cp.dir); // a disk image not mounted (a reboot) is mounted: never an archive of the empty dirs under it
  const archive = await takeCheckpoint(cp.dir, rec.name, reason, env.now, markedFreeze(env.paths, cp, rec, backend), rec.checkpointCompression, backend.tarSource?.(rec, CHECKPOINT_DIRS));
  const rotated = await rotateCheckpoints(cp.checkpoints, rec.checkpointKeep ?? LIMITS.defaultKeep, spare);
  // The copy taken before a restore is not the predecessor's work: a later substitute never starts from it.
  if (spare !== undefined) rec.safetyCheckpoints = [...(rec.safetyCheckpoints ?? []), path.basename(archive)].slice(-SAFETY_NAMES_KEPT);
  if (rec.state === "checkpointing") rec.state = transition(rec.name, rec.state, "active");
  await saveRecord(cp, rec, env);
  await decide(cp, env, { decision: "checkpoint", checkpoint: archive, reason, ...(rotated.length ? { rotated } : {}) });
  return archive;
}

export async function checkpoint(a: Extract<Action, { kind: "checkpoint" }>, env: ApplyEnv): Promise<Details> {
  const cp = liveCell(env, a.cell);
  const rec = await loadRecord(cp);
  const archive = await checkpointCell(cp, rec, a.reason, env);
  return { checkpoint: archive, trigger: a.trigger };
}
