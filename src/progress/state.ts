// The progress clock on disk (.lazarus/progress.json, written atomically by Lazarus only) and the
// observation of a cell's evidence against it.
import path from "node:path";
import type { CellPaths } from "../cells/layout.js";
import { writeJsonAtomic } from "../util/fsx.js";
import { CAPS, readUntrustedJson } from "../util/safe-fs.js";
import { errorMessage } from "../util/errors.js";
import { PROGRESS_FORMAT, type ObservedProgress, type ProgressState } from "./types.js";

export const progressFile = (cp: CellPaths): string => path.join(cp.meta, "progress.json");

export async function readProgress(cp: CellPaths): Promise<ProgressState | undefined> {
  const s = await readUntrustedJson<ProgressState>(progressFile(cp), CAPS.record, cp.dir);
  if (s && (s.formatVersion !== PROGRESS_FORMAT || typeof s.since !== "string"))
    throw new Error(`${progressFile(cp)} is not a progress record of format ${PROGRESS_FORMAT}`);
  return s;
}

export function writeProgress(cp: CellPaths, s: ProgressState): Promise<void> {
  return writeJsonAtomic(progressFile(cp), s);
}

// The cell's evidence now against the recorded clock: what is new, and why a source gave none.
// (The evidence module, with git, is loaded by the first cell with a progress clock: a plan of
// cells without one never loads it.)
export async function observeProgress(cp: CellPaths): Promise<ObservedProgress> {
  const { artifactChanges, readRefs, refChanges, walkArtifacts } = await import("./evidence.js");
  let state: ProgressState | undefined;
  let unreadable: string | undefined;
  try {
    state = await readProgress(cp);
  } catch (err) {
    unreadable = errorMessage(err);
  }
  const [git, walk] = await Promise.all([readRefs(cp.project), walkArtifacts(cp.artifacts, state?.artifacts ?? {})]);
  const notes = [...(git.note ? [git.note] : []), ...walk.notes];
  const news = state ? [...refChanges(state.git, git.refs), ...artifactChanges(state.artifacts, walk.files)] : [];
  return {
    ...(state ? { state } : {}),
    ...(unreadable ? { unreadable } : {}),
    git: git.refs,
    artifacts: walk.files,
    news,
    notes,
  };
}

// A clock starting now from what is there now (nothing of it is evidence).
export function startState(o: Pick<ObservedProgress, "git" | "artifacts">, now: string): ProgressState {
  return { formatVersion: PROGRESS_FORMAT, since: now, slices: 0, stalls: [], git: o.git, artifacts: o.artifacts };
}

// Start the cell's clock now (create, resurrect, progress newly declared): what is there now is the
// baseline, nothing of it evidence; the history (slices, stalls) of an earlier clock is kept.
// again: false keeps a clock already recorded (a create resumed after a crash).
export async function startClock(cp: CellPaths, now: number, again: boolean): Promise<void> {
  const was = await readProgress(cp).catch(() => undefined);
  if (was && !again) return;
  const o = await observeProgress(cp);
  const fresh = startState(o, new Date(now).toISOString());
  await writeProgress(cp, was ? { ...fresh, slices: was.slices, stalls: was.stalls } : fresh);
}
