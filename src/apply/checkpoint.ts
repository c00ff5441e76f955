// The checkpoint operation: active → checkpointing → active around a consistent snapshot.
import path from "node:path";
import type { CellPaths } from "../cells/layout.js";
import { transition } from "../cells/lifecycle.js";
import type { CellRecord } from "../cells/record.js";
import { LIMITS } from "../config/types.js";
import type { Action } from "../plan/actions.js";
import { CHECKPOINT_DIRS, rotateCheckpoints, takeCheckpoint } from "../checkpoints/checkpoint.js";
import { backendOf, decide, iso, liveCell, loadRecord, saveRecord, type ApplyEnv, type Details } from "./context.js";
import { hostSettings } from "../host/settings.js";
import { markedFreeze } from "./freeze.js";
import { LazarusError } from "../util/errors.js";
import { guardCell } from "./guard.js";
import { findBackend } from "../backends/table.js";

const SAFETY_NAMES_KEPT = 32;

// Snapshot the cell (its processes frozen meanwhile, and thawed even if this process dies), keep
// the newest `keep`.
// A downed cell is snapshotted without a state change (spec §4 has no downed → checkpointing).
// spare: a checkpoint the caller is about to restore, kept through this rotation.
// A checkpoint past the cell's size bound is refused (see refused); anything else that fails
// leaves the cell checkpointing, and the next run takes the checkpoint again.
export async function checkpointCell(
  cp: CellPaths,
  rec: CellRecord,
  reason: string,
  env: ApplyEnv,
  spare?: string,
): Promise<string> {
  // Refused before any state change: the cell never waits in checkpointing for what cannot come.
  if (!findBackend(rec.backend)?.capabilities.checkpoint)
    throw new LazarusError(
      "NOT_SUPPORTED",
      `cell ${rec.name}: checkpoints of a ${rec.backend} cell are not supported yet (see docs/backends.md)`,
    );
  if (rec.state === "active") {
    rec.state = transition(rec.name, rec.state, "checkpointing");
    await saveRecord(cp, rec, env);
  }
  await guardCell(cp, env, [cp.checkpoints]);
  const backend = backendOf(env, rec);
  // a disk image not mounted (a reboot) is mounted: never an archive of the empty dirs under it
  await backend.placeData?.(rec, cp.dir);
  let archive: string;
  try {
    archive = await takeCheckpoint(
      cp.dir,
      rec.name,
      reason,
      env.now,
      markedFreeze(env.paths, cp, rec, backend),
      rec.checkpointCompression,
      backend.tarSource?.(rec, CHECKPOINT_DIRS),
      checkpointBound(rec, env),
    );
  } catch (err) {
    if (err instanceof LazarusError && err.code === "CHECKPOINT_TOO_LARGE") await refused(cp, rec, reason, env, err);
    throw err;
  }
  const rotated = await rotateCheckpoints(cp.checkpoints, rec.checkpointKeep ?? LIMITS.defaultKeep, spare);
  // The copy taken before a restore is not the predecessor's work: a later substitute never starts from it.
  if (spare !== undefined)
    rec.safetyCheckpoints = [...(rec.safetyCheckpoints ?? []), path.basename(archive)].slice(-SAFETY_NAMES_KEPT);
  if (rec.state === "checkpointing") rec.state = transition(rec.name, rec.state, "active");
  delete rec.checkpointRefused;
  await saveRecord(cp, rec, env);
  await decide(cp, env, {
    decision: "checkpoint",
    checkpoint: archive,
    reason,
    ...(rotated.length ? { rotated } : {}),
  });
  return archive;
}

// The cell's checkpoint size bound: its own spec.checkpoint.maxSize, never above the host's
// (LAZARUS_CHECKPOINT_MAX_SIZE, which may have been lowered since the cell was declared).
export function checkpointBound(
  rec: Pick<CellRecord, "checkpointMaxBytes">,
  env: Pick<ApplyEnv, "host" | "hostEnv">,
): number {
  const host = (env.host ?? hostSettings(env.hostEnv)).checkpoint.maxBytes;
  return Math.min(rec.checkpointMaxBytes ?? host, host);
}

// A checkpoint refused for its size: nothing of it was kept and the cell was thawed; the cell goes
// back to active (retrying at once would be refused again), and the refusal is recorded for status
// and for the planner (a scheduled checkpoint waits for the schedule's next time).
async function refused(
  cp: CellPaths,
  rec: CellRecord,
  reason: string,
  env: ApplyEnv,
  err: LazarusError,
): Promise<void> {
  if (rec.state === "checkpointing") rec.state = transition(rec.name, rec.state, "active");
  rec.checkpointRefused = { at: iso(env.now), error: err.message };
  await saveRecord(cp, rec, env);
  await decide(cp, env, { decision: "checkpoint-refused", reason, error: err.message });
}

// Whether a failed action keeps the rest of its cell's actions from running. A final checkpoint
// refused for its size does not: the close goes on, with the tree whole in the graveyard for its
// grace and the refusal in the ledger, the close log and status (docs/lifecycle.md).
export function failureStopsCell(action: Action, err: unknown): boolean {
  const sizeRefused = err instanceof LazarusError && err.code === "CHECKPOINT_TOO_LARGE";
  return !(action.kind === "checkpoint" && action.trigger === "close" && sizeRefused);
}

export async function checkpoint(a: Extract<Action, { kind: "checkpoint" }>, env: ApplyEnv): Promise<Details> {
  const cp = liveCell(env, a.cell);
  const rec = await loadRecord(cp);
  const archive = await checkpointCell(cp, rec, a.reason, env);
  return { checkpoint: archive, trigger: a.trigger };
}
