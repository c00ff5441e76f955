// Freezing a cell for a checkpoint, so that it always thaws: a marker naming the freezer (pid and
// kernel start time) is written before the freeze and removed after the thaw; a marker whose
// freezer died (a killed `lazarus checkpoint`) is thawed by the next command that takes the lock.
import { readdir, rm } from "node:fs/promises";
import path from "node:path";
import type { Backend } from "../backends/backend.js";
import type { Backends } from "../backends/registry.js";
import { procInfo } from "../backends/proc.js";
import { cellPaths, type CellPaths, type StatePaths } from "../cells/layout.js";
import type { CellRecord } from "../cells/record.js";
import { writeJsonAtomic } from "../util/fsx.js";
import { frozenMarker, readFrozen, type FrozenMarker } from "../observe/frozen.js";
import { loadRecord } from "./context.js";

// The freeze callback for takeCheckpoint: marker, freeze; thaw, unmark.
export function markedFreeze(cp: CellPaths, rec: CellRecord, backend: Backend): (frozen: boolean) => Promise<void> {
  return async (frozen) => {
    if (frozen) {
      const self = procInfo(process.pid);
      await writeJsonAtomic(frozenMarker(cp), { pid: process.pid, ...(self ? { startTime: self.startTime } : {}), since: new Date().toISOString() } satisfies FrozenMarker);
      await backend.freeze(rec, true);
    } else {
      await backend.freeze(rec, false);
      await rm(frozenMarker(cp), { force: true });
    }
  };
}

// Thaw every live cell whose freezer died; the names of the cells thawed.
export async function thawAbandoned(paths: StatePaths, backends: Backends): Promise<string[]> {
  const thawed: string[] = [];
  for (const name of await readdir(paths.cells).catch(() => [] as string[])) {
    if (name.startsWith(".")) continue;
    const cp = cellPaths(path.join(paths.cells, name));
    const m = await readFrozen(cp.dir);
    if (!m?.abandoned) continue;
    const rec = await loadRecord(cp);
    await backends.get(rec.backend).freeze(rec, false);
    await rm(frozenMarker(cp), { force: true });
    thawed.push(name);
  }
  return thawed;
}
