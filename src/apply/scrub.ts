// Scrub: after grace, a graveyard entry's records go to the archive and the rest is deleted, in
// steps a kill -9 at any point leaves resumable: archive (by rename of a finished temp dir), move
// the entry aside to a name observe knows as "being scrubbed" (graveyard/.scrubbing-<cell>~<id>),
// release what the cell held on its backend, delete. A dir left aside is finished by the next
// plan's scrub (interrupted: true), which never touches graveyard/<cell> itself.
import { lstat, mkdir, readdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import { ARCHIVED_RECORDS, cellPaths, scrubbingName } from "../cells/layout.js";
import { transition } from "../cells/lifecycle.js";
import type { CellRecord } from "../cells/record.js";
import type { Action } from "../plan/actions.js";
import { readJson, syncDir, syncTree, writeJsonAtomic } from "../util/fsx.js";
import { LazarusError, isErrno } from "../util/errors.js";
import { failpoint } from "../util/failpoint.js";
import { CAPS, fileKind, readUntrustedJson } from "../util/safe-fs.js";
import { listScrubbing } from "../observe/observe.js";
import { copyRegularTree } from "../util/safe-copy.js";
import { backendOf, exists, iso, loadRecord, newId, type ApplyEnv, type Details } from "./context.js";
import { gatewayOf, stopMember } from "./members.js";
import { forgetGatewayCell } from "../gateway/cells.js";

// A scrub of graveyard/<cell> finishes only the entry it moved aside; an interrupted one (planned
// last for its name) finishes every entry a killed scrub left aside, so that one that keeps
// failing holds nothing else of the name.
export async function scrub(a: Extract<Action, { kind: "scrub" }>, env: ApplyEnv): Promise<Details> {
  if (a.interrupted) {
    const finished = await finishScrubs(a.cell, (await listScrubbing(env.paths.graveyard)).get(a.cell) ?? [], env);
    return finished.length > 0 ? { finished } : {};
  }
  const details = await scrubGrave(a.cell, env);
  await finishScrubs(a.cell, [details.movedAside], env);
  return details;
}

// Stop what still runs, archive the records, then move the entry aside (finishScrubs deletes it).
// fs.rm removes symbolic links themselves and never what they point at, so nothing outside the
// cell is touched.
async function scrubGrave(cell: string, env: ApplyEnv): Promise<Details & { movedAside: string }> {
  const grave = path.join(env.paths.graveyard, cell);
  const gp = cellPaths(grave);
  const rec = await loadRecord(gp);
  for (const m of rec.members) await stopMember(rec, m, env);
  const survivors = await backendOf(env, rec).stopCell(rec);
  if (survivors.length)
    throw new LazarusError(
      "STOP_FAILED",
      `cannot scrub cell ${cell}: processes ${survivors.join(", ")} of it survived SIGKILL; nothing was deleted`,
    );
  await forgetGatewayCell(gatewayOf(env), cell, rec.uid);
  const skipped: string[] = [];
  let archived = await findArchive(env.paths.archive, cell, rec.uid);
  if (!archived) {
    const day = iso(env.now).slice(0, 10);
    const dayDir = path.join(env.paths.archive, day);
    await mkdir(dayDir, { recursive: true });
    await syncDir(env.paths.archive); // the day dir's own entry
    let target = path.join(dayDir, cell);
    if (await exists(target)) target = path.join(dayDir, `${cell}~${rec.uid.slice(0, 8)}`);
    const tmp = path.join(dayDir, `.tmp-${cell}-${rec.uid}`);
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    for (const item of ARCHIVED_RECORDS) {
      const from = path.join(gp.meta, item);
      if (!(await exists(from))) continue;
      skipped.push(...(await copyRegularTree(from, path.join(tmp, item))));
    }
    const archivedRec: CellRecord = {
      ...rec,
      state: transition(cell, rec.state, "archived"),
      archivedAt: iso(env.now),
    };
    archivedRec.updatedAt = iso(env.now);
    await writeJsonAtomic(path.join(tmp, "cell.json"), archivedRec);
    await syncTree(tmp); // the copies are on disk before the rename makes them the archive
    failpoint("scrub:before-archive-rename");
    await rename(tmp, target);
    await syncDir(dayDir); // the archive is durable before the entry is moved aside and deleted
    archived = target;
  }
  failpoint("scrub:archived");
  await backendOf(env, rec).unmount?.(rec, grave); // its disk image: unmounted, detached, deleted
  failpoint("scrub:unmounted");
  const aside = scrubbingName(cell, newId());
  await rename(grave, path.join(env.paths.graveyard, aside));
  await syncDir(env.paths.graveyard); // the move is durable before anything in it is deleted
  failpoint("scrub:moved-aside");
  return {
    archive: archived,
    movedAside: aside,
    ...(skipped.length ? { skipped: skipped.map((s) => path.relative(grave, s)) } : {}),
  };
}

// Entries of this cell moved aside by a scrub (names in the graveyard): the backend releases what
// the cell held (its record is still whole until deletion starts), then the dir is deleted, once
// its archive is found. Idempotent: a dir whose record is gone was released and archived before
// its deletion began. Returns the names finished.
async function finishScrubs(cell: string, names: string[], env: ApplyEnv): Promise<string[]> {
  const done: string[] = [];
  for (const name of names) {
    const dir = path.join(env.paths.graveyard, name);
    await realDir(dir, `${name} in the graveyard`);
    const rec = await readUntrustedJson<CellRecord>(cellPaths(dir).record, CAPS.record, dir);
    if (rec) {
      if (!(await findArchive(env.paths.archive, cell, rec.uid))) {
        throw new LazarusError(
          "SCRUB_FAILED",
          `cannot finish the scrub of ${name}: no archive of cell ${cell} (uid ${rec.uid}) is in ${env.paths.archive}; nothing was deleted (restore the archive entry, or move the directory out of the graveyard by hand)`,
        );
      }
      await backendOf(env, rec).unmount?.(rec, dir); // a scrub killed before it unmounted
      await backendOf(env, rec).releaseCell({ ...rec, name: cell });
    }
    failpoint("scrub:released");
    await removeTree(dir);
    done.push(name);
  }
  return done;
}

// Refuse anything but a real directory (a link, a file) before listing or deleting in it.
async function realDir(dir: string, what: string): Promise<boolean> {
  const st = await lstat(dir).catch((err: unknown) => {
    if (isErrno(err, "ENOENT")) return undefined;
    throw err;
  });
  if (!st) return false;
  if (!st.isDirectory())
    throw new LazarusError(
      "SCRUB_FAILED",
      `${what} (${dir}) is a ${fileKind(st)}, not a directory; nothing was deleted (remove it by hand after checking what it is)`,
    );
  return true;
}

// Delete a tree, its records last. failpoint scrub:deleting: killed with only an empty .lazarus/
// left, as a kill -9 during a recursive rm can leave it.
async function removeTree(dir: string): Promise<void> {
  if (!(await realDir(dir, "the entry being scrubbed"))) return;
  const meta = cellPaths(dir).meta;
  const hasMeta = await realDir(meta, "its .lazarus");
  for (const e of await readdir(dir))
    if (path.join(dir, e) !== meta) await rm(path.join(dir, e), { recursive: true, force: true });
  if (hasMeta) for (const e of await readdir(meta)) await rm(path.join(meta, e), { recursive: true, force: true });
  failpoint("scrub:deleting");
  await rm(dir, { recursive: true, force: true });
}

// The archive entry of this incarnation, if an earlier, interrupted scrub already wrote it.
async function findArchive(root: string, name: string, uid: string): Promise<string | undefined> {
  let days: string[];
  try {
    days = await readdir(root);
  } catch (err) {
    if (isErrno(err, "ENOENT")) return undefined;
    throw err;
  }
  for (const day of days) {
    let entries: string[];
    try {
      entries = await readdir(path.join(root, day));
    } catch {
      continue;
    }
    for (const e of entries) {
      if (e !== name && !e.startsWith(`${name}~`)) continue;
      const rec = await readJson<CellRecord>(path.join(root, day, e, "cell.json")).catch(() => undefined);
      if (rec?.uid === uid) return path.join(root, day, e);
    }
  }
  return undefined;
}
