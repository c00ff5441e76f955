// What the daemon's periodic resync needs to know of a cell without observing it: a fingerprint of
// everything observe reads for it (see src/observe/observe.ts), made of stat() results and the
// liveness of the processes it last saw alive. Equal fingerprints, an unchanged desired state and
// no wake due mean the plan for that cell would be what it was: the resync skips it.
//
// Soundness rests on two rules:
//  - The on-disk part is taken BEFORE the observation it stands for, under the state-dir lock (no
//    other Lazarus writer runs meanwhile), so any write after it changes it: records and every
//    other Lazarus file are replaced by rename (a new inode), directories change mtime when an
//    entry comes or goes.
//  - The process part is what that observation found: each member seen alive, by pid and kernel
//    start time. A process that dies afterwards fails isAlive; a dead one cannot come back with the
//    same pid and start time.
// What changes with time alone (TTL, grace, retention, backoff, heartbeats, schedules) is the
// daemon's wake for the cell, checked separately. A cell some other way (a frozen marker, a
// journal entry, a backend whose members are not local processes, a cell judged for progress,
// whose evidence is in project/ and shared/artifacts/) is never skipped.
import { lstatSync } from "node:fs";
import { readdir } from "node:fs/promises";
import path from "node:path";
import { isAlive } from "../host/proc.js";
import { hasLocalPids } from "../backends/liveness.js";
import { cellPaths, type CellPaths, type StatePaths } from "../cells/layout.js";
import { frozenMarker } from "../observe/frozen.js";
import { archiveEntries, type ObservedName } from "../observe/observe.js";
import { tombstoneDir } from "../observe/tombstone.js";
import { isErrno } from "../util/errors.js";

export interface Fingerprint {
  disk: string; // see diskPrint
  alive: { pid: number; startTime: number | undefined }[]; // the members observe found alive
}

const ABSENT = "-";

// No exception for a missing file: most of what is looked at here usually does not exist, and a
// thrown error costs more than the stat itself.
function statPrint(file: string): string {
  try {
    const s = lstatSync(file, { throwIfNoEntry: false });
    return s ? `${s.ino}.${s.mode}.${s.size}.${s.mtimeMs}.${s.ctimeMs}` : ABSENT;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? "?";
  }
}

// What one listing of the state dir says of every name, for diskPrint: archive entries, and which
// names have an interrupted apply (journal.d/) or a tombstone.
export interface Listing {
  archives: Map<string, string[]>;
  journals: Set<string>;
  tombstones: Set<string>;
  graves?: Set<string>; // the graveyard's entries (a name not there has no graveyard dir); unknown: stat each
}

export async function listing(paths: StatePaths, archives?: Map<string, string[]>): Promise<Listing> {
  const names = async (dir: string): Promise<Set<string>> =>
    new Set(
      (await readdir(dir).catch(() => [] as string[])).filter((e) => e.endsWith(".json")).map((e) => e.slice(0, -5)),
    );
  return {
    archives: archives ?? (await archiveEntries(paths)),
    journals: await names(path.join(path.dirname(paths.ledger), "journal.d")),
    tombstones: await names(tombstoneDir(paths)),
    ...(await graveyardEntries(paths)),
  };
}

async function graveyardEntries(paths: StatePaths): Promise<{ graves?: Set<string> }> {
  try {
    return { graves: new Set(await readdir(paths.graveyard)) };
  } catch (err) {
    return isErrno(err, "ENOENT") ? { graves: new Set() } : {};
  }
}

// A cell dir's paths and its freeze marker, worked out once per dir (a resync asks for every
// cell's, every time; cellPaths joins a dozen paths).
const known = new Map<string, { cp: CellPaths; frozen: string }>();
function pathsOf(dir: string): { cp: CellPaths; frozen: string } {
  let p = known.get(dir);
  if (!p) {
    if (known.size >= 100_000) known.clear();
    const cp = cellPaths(dir);
    p = { cp, frozen: frozenMarker(cp) };
    known.set(dir, p);
  }
  return p;
}

// The on-disk facts of one name: its live dir, record and checkpoints, its graveyard record,
// tombstone and archive entries; undefined when the name must always be observed (frozen, or an
// apply of it was interrupted). Records are replaced by rename (a new inode), so a rewrite shows
// even within one tick of the file system's coarse clock.
export function diskPrint(paths: StatePaths, name: string, seen: Listing): string | undefined {
  if (seen.journals.has(name)) return undefined;
  // (names are DNS labels and the state paths normalised: a join would give the same string)
  const { cp, frozen } = pathsOf(`${paths.cells}${path.sep}${name}`);
  const liveDir = statPrint(cp.dir);
  if (liveDir !== ABSENT && statPrint(frozen) !== ABSENT) return undefined;
  const grave = pathsOf(`${paths.graveyard}${path.sep}${name}`).cp;
  const graveDir = !seen.graves || seen.graves.has(name) ? statPrint(grave.dir) : ABSENT;
  return [
    liveDir,
    liveDir === ABSENT ? "" : statPrint(cp.record),
    liveDir === ABSENT ? "" : statPrint(cp.checkpoints),
    graveDir,
    graveDir === ABSENT ? "" : statPrint(grave.record),
    graveDir === ABSENT ? "" : statPrint(grave.checkpoints),
    seen.tombstones.has(name) ? statPrint(path.join(tombstoneDir(paths), `${name}.json`)) : ABSENT,
    (seen.archives.get(name) ?? []).join("/"),
  ].join("|");
}

// The fingerprint of what was just observed of a name, given its disk print taken before.
export function fingerprintOf(disk: string | undefined, o: ObservedName | undefined): Fingerprint | undefined {
  if (disk === undefined) return undefined;
  const live = o?.live;
  if (live?.record && !hasLocalPids(live.record.backend)) return undefined;
  // Judged for progress: its evidence (project/'s refs, shared/artifacts/) is not in the disk print.
  if (live?.record?.progress) return undefined;
  const alive = (live?.members ?? [])
    .filter((m) => m.alive && m.pid)
    .map((m) => ({ pid: m.pid as number, startTime: m.startTime }));
  return { disk, alive };
}

// Whether nothing observe reads of the name changed since fp was taken.
export function unchanged(fp: Fingerprint, disk: string | undefined): boolean {
  return disk === fp.disk && fp.alive.every((m) => isAlive(m.pid, m.startTime));
}
