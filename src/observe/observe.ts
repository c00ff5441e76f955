// observe: read only the real world (cell records on disk and the process table).
import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import {
  SCRUBBING_RE,
  cellPaths,
  heartbeatFile,
  memberExitFile,
  type CellPaths,
  type StatePaths,
} from "../cells/layout.js";
import type { CellRecord, MemberRecord } from "../cells/record.js";
import { ownership } from "../host/proc.js";
import { findBackend } from "../backends/table.js";
import { readFrozen } from "./frozen.js";
import { readJson } from "../util/fsx.js";
import { CAPS, readUntrusted, readUntrustedJson, untrustedMtime } from "../util/safe-fs.js";
import { mapLimit } from "../util/map-limit.js";
import { listTombstones, readTombstone } from "./tombstone.js";
import { listCheckpoints } from "../checkpoints/list.js";
import { observeProgress } from "../progress/state.js";

export { listCheckpoints } from "../checkpoints/list.js";

const IO_LIMIT = 64; // cells observed at once
import { errorMessage, isErrno } from "../util/errors.js";

export type { Observed, ObservedCell, ObservedCheckpoint, ObservedMember, ObservedName, Place } from "./types.js";
import type { Observed, ObservedCell, ObservedMember, ObservedName, Place } from "./types.js";

async function listDirs(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries
      .filter((e) => e.isDirectory() && !e.name.startsWith("."))
      .map((e) => e.name)
      .sort();
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
    record =
      place === "archive"
        ? await readJson<CellRecord>(path.join(dir, "cell.json"))
        : await readUntrustedJson<CellRecord>(cellPaths(dir).record, CAPS.record, dir);
    if (!record) unreadable = `missing ${place === "archive" ? "cell.json" : ".lazarus/cell.json"}`;
  } catch (err) {
    unreadable = `unreadable .lazarus/cell.json: ${errorMessage(err)}`;
  }
  const cp = cellPaths(dir);
  // A backend that observes its own members (where they run: a cluster, another host) does so for
  // every such cell at once, after this (observeBackends); here they are as recorded, not alive.
  const backend = record ? findBackend(record.backend) : undefined;
  const members = backend?.observe
    ? (record?.members ?? []).map((m) => ({ ...m, alive: false }))
    : await Promise.all((record?.members ?? []).map((m) => observeMember(cp, m, place, fallbackName)));
  const checkpoints = await listCheckpoints(place === "archive" ? path.join(dir, "checkpoints") : cp.checkpoints);
  const frozen = place === "cells" ? await readFrozen(dir) : undefined;
  const disk = place === "cells" && record?.disk ? await backend?.diskUsage?.(dir) : undefined;
  // Evidence is read only where the backend keeps the cell's tree on this host (a record of a cell
  // elsewhere that claims spec.progress, written before load refused it there, is never judged).
  const judged = place === "cells" && record?.progress && backend?.capabilities.progress;
  const progress = judged ? await observeProgress(cp) : undefined;
  return {
    name: place === "archive" ? (record?.name ?? fallbackName) : fallbackName,
    place,
    dir,
    members,
    checkpoints,
    ...(record ? { record } : {}),
    ...(unreadable ? { unreadable } : {}),
    ...(frozen ? { frozen: { since: frozen.since, pid: frozen.pid, abandoned: frozen.abandoned } } : {}),
    ...(disk ? { disk } : {}),
    ...(progress ? { progress } : {}),
  };
}

// cell: the name of the cell's directory, which the member's process must prove it belongs to.
async function observeMember(cp: CellPaths, m: MemberRecord, place: Place, cell: string): Promise<ObservedMember> {
  const who = ownership(m.pid, { startTime: m.startTime, spawnId: m.spawnId, cell });
  const alive = who === "owned";
  const out: ObservedMember = { ...m, alive };
  if (who === "unverifiable")
    out.unverifiable = `process ${m.pid} lives, started as recorded, but its environment cannot be read by this user (uid ${process.getuid?.() ?? "?"}), so it cannot be proved ${m.identity}'s`;
  if (place !== "cells" || !m.command) return out;
  const ignored: string[] = [];
  const rel = (f: string): string => path.relative(cp.dir, f);
  if (!alive && who !== "unverifiable" && (m.status === "running" || m.status === "starting")) {
    const file = memberExitFile(cp, m.home);
    const r = await readUntrusted(file, CAPS.exitFile, cp.dir);
    // "<code>" from the process backend's wrapper, "<code> oom_kill=<n>" from the sandbox's supervisor
    const parsed = r.ok ? /^\s*(-?\d{1,3})(?: oom_kill=(\d{1,9}))?\s*$/.exec(r.text) : null;
    const code = parsed ? Number.parseInt(parsed[1] as string, 10) : Number.NaN;
    if (r.ok && !Number.isNaN(code))
      out.exit = { code, at: r.mtimeMs, ...(Number(parsed?.[2] ?? 0) > 0 ? { oom: true } : {}) };
    else if (r.ok) ignored.push(`exit file ${rel(file)} holds no exit code; ignored`);
    else if (!r.missing) ignored.push(`exit file ${rel(file)} ${r.reason}; ignored`); // missing: the process was killed
  }
  if (m.heartbeatMs) {
    const file = heartbeatFile(cp, m.home);
    const r = await untrustedMtime(file, cp.dir);
    if (r.ok) out.heartbeatAt = r.mtimeMs;
    else if (!r.missing) ignored.push(`heartbeat ${rel(file)} ${r.reason}; counted as no heartbeat`);
  }
  if (ignored.length > 0) out.ignored = ignored;
  return out;
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
  const live = await mapLimit(await listDirs(paths.cells), IO_LIMIT, (n) =>
    observeCell(path.join(paths.cells, n), "cells", n),
  );
  for (const c of live) slot(cells, c.name).live = c;
  const dead = await mapLimit(await listDirs(paths.graveyard), IO_LIMIT, (n) =>
    observeCell(path.join(paths.graveyard, n), "graveyard", n),
  );
  for (const c of dead) slot(cells, c.name).graveyard = c;
  for (const day of await listDirs(paths.archive)) {
    const dayDir = path.join(paths.archive, day);
    const entries = await mapLimit(await listDirs(dayDir), IO_LIMIT, (n) =>
      observeCell(path.join(dayDir, n), "archive", n.replace(/~.*$/, "")),
    );
    for (const c of entries) slot(cells, c.name).archives.push(c);
  }
  for (const [name, asides] of await listScrubbing(paths.graveyard)) slot(cells, name).scrubbing = asides;
  for (const name of await listTombstones(paths)) {
    const t = await readTombstone(paths, name);
    if (t) slot(cells, name).tombstone = t;
  }
  await observeBackends(paths, cells);
  return { cells };
}

// The members of cells whose backend observes them where they run (a cluster, another host: one
// call per cluster or host), live and graveyard cells, each backend once with all of its cells.
async function observeBackends(paths: StatePaths, cells: Map<string, ObservedName>): Promise<void> {
  const byBackend = new Map<string, ObservedCell[]>();
  for (const o of cells.values()) {
    for (const c of [o.live, o.graveyard]) {
      const name = c?.record?.backend;
      if (!c || name === undefined || !findBackend(name)?.observe) continue;
      byBackend.set(name, [...(byBackend.get(name) ?? []), c]);
    }
  }
  const stateRoot = path.dirname(paths.ledger);
  for (const [name, list] of byBackend) await findBackend(name)?.observe?.(list, { stateRoot });
}

// The graveyard entries being scrubbed (.scrubbing-<cell>~<id>), by cell name, sorted (one listing
// of the graveyard).
export async function listScrubbing(graveyard: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  let entries: string[];
  try {
    entries = (await readdir(graveyard)).sort();
  } catch (err) {
    if (isErrno(err, "ENOENT")) return out;
    throw err;
  }
  for (const e of entries) {
    const name = SCRUBBING_RE.exec(e)?.[1];
    if (name) out.set(name, [...(out.get(name) ?? []), e]);
  }
  return out;
}

// Only the named cells: their live dir, graveyard entry and archive entries.
export async function observeNames(paths: StatePaths, names: Iterable<string>): Promise<Observed> {
  const cells = new Map<string, ObservedName>();
  const asides = await listScrubbing(paths.graveyard);
  // Each archive day is listed once per call, not once per name.
  const days = await Promise.all(
    (await listDirs(paths.archive)).map(async (day) => ({
      dir: path.join(paths.archive, day),
      entries: await listDirs(path.join(paths.archive, day)),
    })),
  );
  await mapLimit([...names], IO_LIMIT, async (name) => {
    const s = slot(cells, name);
    const [live, grave] = await Promise.all([
      observeIfDir(path.join(paths.cells, name), "cells", name),
      observeIfDir(path.join(paths.graveyard, name), "graveyard", name),
    ]);
    if (live) s.live = live;
    if (grave) s.graveyard = grave;
    const t = await readTombstone(paths, name);
    if (t) s.tombstone = t;
    const scrubbing = asides.get(name);
    if (scrubbing) s.scrubbing = scrubbing;
    for (const day of days) {
      for (const e of day.entries) {
        if (e === name || e.startsWith(`${name}~`))
          s.archives.push(await observeCell(path.join(day.dir, e), "archive", name));
      }
    }
  });
  await observeBackends(paths, cells);
  return { cells };
}

async function observeIfDir(dir: string, place: Place, name: string): Promise<ObservedCell | undefined> {
  try {
    if (!(await stat(dir)).isDirectory()) return undefined;
  } catch {
    return undefined;
  }
  return observeCell(dir, place, name);
}

// The name of every cell with anything on disk (live, graveyard or archive), without reading them;
// archives: each name's archive entries ("<day>/<entry>", in listing order).
export async function listNames(paths: StatePaths): Promise<{ names: Set<string>; archives: Map<string, string[]> }> {
  const names = new Set<string>([
    ...(await listDirs(paths.cells)),
    ...(await listDirs(paths.graveyard)),
    ...(await listScrubbing(paths.graveyard)).keys(),
  ]);
  const archives = await archiveEntries(paths);
  for (const name of archives.keys()) names.add(name);
  return { names, archives };
}

// Each name's archive entries ("<day>/<entry>"): one listing of the archive.
export async function archiveEntries(paths: StatePaths): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const day of await listDirs(paths.archive)) {
    for (const e of await listDirs(path.join(paths.archive, day))) {
      const name = e.replace(/~.*$/, "");
      const list = out.get(name);
      if (list) list.push(`${day}/${e}`);
      else out.set(name, [`${day}/${e}`]);
    }
  }
  return out;
}
