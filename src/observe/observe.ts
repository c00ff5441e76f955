// observe: read only the real world (cell records on disk and the process table).
import { readdir } from "node:fs/promises";
import path from "node:path";
import { cellPaths, type StatePaths } from "../cells/layout.js";
import type { CellRecord, MemberRecord } from "../cells/record.js";
import { isAlive } from "../backends/proc.js";
import { readJson } from "../util/fsx.js";
import { errorMessage, isErrno } from "../util/errors.js";

export type Place = "cells" | "graveyard" | "archive";

export interface ObservedMember extends MemberRecord {
  alive: boolean;
}

export interface ObservedCell {
  name: string;
  place: Place;
  dir: string;
  // undefined when the directory has no readable cell.json; such a cell is never touched.
  record?: CellRecord;
  unreadable?: string;
  members: ObservedMember[];
}

export interface ObservedName {
  live?: ObservedCell; // under cells/
  graveyard?: ObservedCell;
  archives: ObservedCell[];
}

export interface Observed {
  cells: Map<string, ObservedName>;
}

async function listDirs(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory() && !e.name.startsWith(".")).map((e) => e.name).sort();
  } catch (err) {
    if (isErrno(err, "ENOENT")) return [];
    throw err;
  }
}

// One cell directory: its record and, for each member, whether its process lives.
export async function observeCell(dir: string, place: Place, fallbackName: string): Promise<ObservedCell> {
  let record: CellRecord | undefined;
  let unreadable: string | undefined;
  try {
    // An archive entry holds the records of .lazarus/ directly.
    record = await readJson<CellRecord>(place === "archive" ? path.join(dir, "cell.json") : cellPaths(dir).record);
    if (!record) unreadable = `missing ${place === "archive" ? "cell.json" : ".lazarus/cell.json"}`;
  } catch (err) {
    unreadable = `unreadable .lazarus/cell.json: ${errorMessage(err)}`;
  }
  const members = (record?.members ?? []).map((m) => ({ ...m, alive: isAlive(m.pid, m.startTime) }));
  return { name: place === "archive" ? (record?.name ?? fallbackName) : fallbackName, place, dir, members, ...(record ? { record } : {}), ...(unreadable ? { unreadable } : {}) };
}

function slot(map: Map<string, ObservedName>, name: string): ObservedName {
  let s = map.get(name);
  if (!s) {
    s = { archives: [] };
    map.set(name, s);
  }
  return s;
}

// Everything under the state dir: live cells, the graveyard and the archive.
export async function observe(paths: StatePaths): Promise<Observed> {
  const cells = new Map<string, ObservedName>();
  const live = await Promise.all((await listDirs(paths.cells)).map((n) => observeCell(path.join(paths.cells, n), "cells", n)));
  for (const c of live) slot(cells, c.name).live = c;
  const dead = await Promise.all((await listDirs(paths.graveyard)).map((n) => observeCell(path.join(paths.graveyard, n), "graveyard", n)));
  for (const c of dead) slot(cells, c.name).graveyard = c;
  for (const day of await listDirs(paths.archive)) {
    const dayDir = path.join(paths.archive, day);
    const entries = await Promise.all((await listDirs(dayDir)).map((n) => observeCell(path.join(dayDir, n), "archive", n.replace(/~.*$/, ""))));
    for (const c of entries) slot(cells, c.name).archives.push(c);
  }
  return { cells };
}
