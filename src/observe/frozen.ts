// A cell frozen for a checkpoint: the marker its freezer writes (pid and kernel start time) and
// whether that freezer is gone, so nothing but the next command will thaw it.
import path from "node:path";
import { isAlive } from "../host/proc.js";
import { cellPaths, type CellPaths, type StatePaths } from "../cells/layout.js";
import { CAPS, readUntrustedJson } from "../util/safe-fs.js";

export interface FrozenMarker {
  pid: number;
  startTime?: number;
  since: string;
}

export const frozenMarker = (cp: CellPaths): string => path.join(cp.meta, "frozen.json");

// The state dir's index of frozen cells (<state>/frozen/<cell>), so that the check every command
// makes under the lock reads one directory, not a marker per cell.
export const frozenIndex = (paths: Pick<StatePaths, "ledger">): string =>
  path.join(path.dirname(paths.ledger), "frozen");
export const frozenIndexEntry = (paths: Pick<StatePaths, "ledger">, cell: string): string =>
  path.join(frozenIndex(paths), cell);

// The cell's freeze marker with whether its freezer died, or undefined when it is not frozen.
export async function readFrozen(cellDir: string): Promise<(FrozenMarker & { abandoned: boolean }) | undefined> {
  const m = await readUntrustedJson<FrozenMarker>(frozenMarker(cellPaths(cellDir)), CAPS.exitFile, cellDir).catch(
    () => undefined,
  );
  if (!m || typeof m.pid !== "number" || typeof m.since !== "string") return undefined;
  return { ...m, abandoned: !isAlive(m.pid, m.startTime) };
}
