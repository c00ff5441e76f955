// Tombstones: the "closed and unchanged" memory of a cell name, kept by Lazarus in the state dir
// (<state>/tombstones/<name>.json) so it outlives the archive's purge. A cell closed on its TTL
// does not come back as a fresh cell with a new TTL once its archive is gone.
import { mkdir, readdir } from "node:fs/promises";
import path from "node:path";
import type { StatePaths } from "../cells/layout.js";
import { readJson, writeJsonAtomic } from "../util/fsx.js";
import { isErrno } from "../util/errors.js";

export interface Tombstone {
  cell: string;
  closedAt: string;
  closedDigest: string | null; // the declaration's digest when it closed; null: closed because it was removed
}

const NAME_RE = /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)\.json$/;

// The directory that holds the tombstones, beside the ledger (no member can write there).
export function tombstoneDir(paths: StatePaths): string {
  return path.join(path.dirname(paths.ledger), "tombstones");
}

// Record (atomically) how the cell last closed; it replaces any earlier tombstone of that name.
export async function writeTombstone(paths: StatePaths, t: Tombstone): Promise<void> {
  const dir = tombstoneDir(paths);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeJsonAtomic(path.join(dir, `${t.cell}.json`), t, 0o600);
}

// The tombstone of one name, or undefined (none, or not a well-formed one).
export async function readTombstone(paths: StatePaths, name: string): Promise<Tombstone | undefined> {
  let t: Tombstone | undefined;
  try {
    t = await readJson<Tombstone>(path.join(tombstoneDir(paths), `${name}.json`));
  } catch {
    return undefined; // a torn or garbled file is no memory
  }
  if (
    !t ||
    t.cell !== name ||
    typeof t.closedAt !== "string" ||
    (t.closedDigest !== null && typeof t.closedDigest !== "string")
  )
    return undefined;
  return t;
}

// Every name that has a tombstone.
export async function listTombstones(paths: StatePaths): Promise<string[]> {
  try {
    return (await readdir(tombstoneDir(paths)))
      .map((e) => NAME_RE.exec(e)?.[1])
      .filter((n): n is string => n !== undefined)
      .sort();
  } catch (err) {
    if (isErrno(err, "ENOENT")) return [];
    throw err;
  }
}
