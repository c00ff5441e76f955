// Freezing a cell for a checkpoint, so that it always thaws: a marker naming the freezer (pid and
// kernel start time) is written before the freeze and removed after the thaw; a marker whose
// freezer died (a killed `lazarus checkpoint`) is thawed by the next command that takes the lock.
import { mkdir, readdir, rm } from "node:fs/promises";
import path from "node:path";
import type { Backend } from "../backends/backend.js";
import type { Backends } from "../backends/registry.js";
import { procInfo } from "../host/proc.js";
import { cellPaths, type CellPaths, type StatePaths } from "../cells/layout.js";
import type { CellRecord } from "../cells/record.js";
import { LazarusError, isErrno } from "../util/errors.js";
import { TEMP_RE, writeJsonAtomic, writeTextAtomic } from "../util/fsx.js";
import { frozenIndex, frozenIndexEntry, frozenMarker, readFrozen, type FrozenMarker } from "../observe/frozen.js";
import { loadRecord } from "./context.js";

// The freeze callback for takeCheckpoint: index entry, marker, freeze; thaw, unmark, unindex.
// (The entry exists whenever the marker does: a crash between leaves an entry without a marker,
// which the next thawAbandoned removes.)
export function markedFreeze(
  paths: Pick<StatePaths, "ledger">,
  cp: CellPaths,
  rec: CellRecord,
  backend: Backend,
): (frozen: boolean) => Promise<void> {
  const entry = frozenIndexEntry(paths, path.basename(cp.dir));
  return async (frozen) => {
    if (frozen) {
      const self = procInfo(process.pid);
      await mkdir(path.dirname(entry), { recursive: true });
      await writeTextAtomic(entry, `${process.pid}\n`);
      await writeJsonAtomic(frozenMarker(cp), {
        pid: process.pid,
        ...(self ? { startTime: self.startTime } : {}),
        since: new Date().toISOString(),
      } satisfies FrozenMarker);
      await backend.freeze(rec, true);
    } else {
      await backend.freeze(rec, false);
      await rm(frozenMarker(cp), { force: true });
      await rm(entry, { force: true });
    }
  };
}

// Thaw every live cell whose freezer died; the names of the cells thawed. Only the cells in the
// frozen index are looked at; a state dir without the index yet (made before it existed) is
// scanned whole once.
export async function thawAbandoned(paths: StatePaths, backends: Backends): Promise<string[]> {
  const index = frozenIndex(paths);
  let names = await readdir(index).catch((err: unknown) => (isErrno(err, "ENOENT") ? undefined : Promise.reject(err)));
  if (names === undefined) {
    names = await readdir(paths.cells).catch(() => [] as string[]);
    await mkdir(index, { recursive: true });
  }
  const thawed: string[] = [];
  for (const name of names) {
    if (name.startsWith(".") || TEMP_RE.test(name)) continue;
    const cp = cellPaths(path.join(paths.cells, name));
    const m = await readFrozen(cp.dir);
    if (m && !m.abandoned) continue; // its freezer is at work
    if (m) {
      const rec = await loadRecord(cp);
      try {
        await backends.get(rec.backend).freeze(rec, false);
      } catch (err) {
        // A remote cell whose host is away stays marked (and its cell held): thawed once it answers.
        if (err instanceof LazarusError && err.code === "REMOTE_UNREACHABLE") continue;
        throw err;
      }
      await rm(frozenMarker(cp), { force: true });
      thawed.push(name);
    }
    await rm(frozenIndexEntry(paths, name), { force: true });
  }
  return thawed;
}
