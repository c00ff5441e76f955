// Restoring dirs of a live cell from a checkpoint without ever deleting first: the checkpoint is
// extracted and checked in a staging dir inside the cell (.lazarus-restore-*), marked verified,
// and only then swapped in dir by dir with renames. A crash before the mark leaves the cell as it
// was; a crash after it is rolled forward by the next run (finishRestores, under the lock).
import { lstat, mkdir, mkdtemp, readdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import type { Backend } from "../backends/backend.js";
import type { Backends } from "../backends/registry.js";
import { cellPaths, type StatePaths } from "../cells/layout.js";
import { loadRecord } from "./context.js";
import { diskPaths } from "../backends/disk/image.js";
import type { TryCell } from "../lock/cell-lock.js";
import type { CellRecord } from "../cells/record.js";
import { isErrno } from "../util/errors.js";
import { failpoint } from "../util/failpoint.js";
import { readJson, writeJsonAtomic } from "../util/fsx.js";

export const RESTORE_PREFIX = ".lazarus-restore-";
const VERIFIED = "verified.json"; // { dirs: [...] }: the staged dirs are whole and checked
const OLD = ".old"; // where the replaced dirs go before they are cleared

const exists = (p: string) =>
  lstat(p).then(
    () => true,
    (err: unknown) => (isErrno(err, "ENOENT") ? false : Promise.reject(err)),
  );

// Replace dirs of cellDir with the checkpoint's. Where the backend keeps them on a disk image,
// the restore is staged and swapped in the image (renames stay on its filesystem), then bound.
export async function restoreReplacing(
  backend: Backend,
  rec: CellRecord,
  cellDir: string,
  checkpointFile: string,
  dirs: readonly string[],
): Promise<void> {
  const root = (await backend.placeData?.(rec, cellDir)) ?? cellDir;
  const staging = await mkdtemp(path.join(root, RESTORE_PREFIX));
  try {
    await backend.restore(rec, staging, checkpointFile, dirs); // extracted and checked against the manifest
    await writeJsonAtomic(path.join(staging, VERIFIED), { dirs });
  } catch (err) {
    await discard(backend, rec, staging);
    throw err;
  }
  await finishRestore(backend, rec, root, staging);
  await backend.placeData?.(rec, cellDir); // the swapped dirs bound over the cell's
}

// Roll a staged restore forward (verified) or throw it away (not verified); then clear what it
// replaced as the cell's own user where the backend has one.
export async function finishRestore(
  backend: Backend,
  rec: CellRecord,
  cellDir: string,
  staging: string,
): Promise<void> {
  const mark = await readJson<{ dirs?: unknown }>(path.join(staging, VERIFIED)).catch(() => undefined);
  const dirs = Array.isArray(mark?.dirs)
    ? mark.dirs.filter((d): d is string => typeof d === "string" && /^[a-z]+$/.test(d))
    : undefined;
  if (dirs) {
    const old = path.join(staging, OLD);
    await mkdir(old, { recursive: true });
    for (const d of dirs) {
      if (!(await exists(path.join(staging, d)))) continue; // swapped in before a crash
      if ((await exists(path.join(cellDir, d))) && !(await exists(path.join(old, d))))
        await rename(path.join(cellDir, d), path.join(old, d));
      await rename(path.join(staging, d), path.join(cellDir, d));
      failpoint("restore:swapped-one");
    }
  }
  await discard(backend, rec, staging);
}

// Empty and remove a staging dir (and the replaced dirs in it).
async function discard(backend: Backend, rec: CellRecord, staging: string): Promise<void> {
  const old = path.join(staging, OLD);
  const inOld = (await readdir(old).catch(() => [] as string[])).filter((e) => /^[a-z]+$/.test(e));
  if (inOld.length > 0) await backend.clear(rec, old, inOld);
  const staged = (await readdir(staging).catch(() => [] as string[])).filter((e) => /^[a-z]+$/.test(e));
  if (staged.length > 0) await backend.clear(rec, staging, staged);
  await rm(staging, { recursive: true, force: true });
}

// The staging dirs a killed restore left in a cell.
export async function leftoverRestores(cellDir: string): Promise<string[]> {
  return (await readdir(cellDir).catch(() => [] as string[]))
    .filter((e) => e.startsWith(RESTORE_PREFIX))
    .map((e) => path.join(cellDir, e));
}

// Finish (or throw away) every restore a killed run left in a live cell; the cells touched.
// tryCell: hold the cell meanwhile; a cell a live process holds is left to it.
export async function finishRestores(paths: StatePaths, backends: Backends, tryCell?: TryCell): Promise<string[]> {
  const touched: string[] = [];
  for (const name of await readdir(paths.cells).catch(() => [] as string[])) {
    if (name.startsWith(".")) continue;
    const cp = cellPaths(path.join(paths.cells, name));
    // A cell on a disk image (.lazarus/disk, mounted) stages its restores there.
    const onImage = diskPaths(cp.dir).mount;
    const leftoversOf = async () => [
      ...(await leftoverRestores(cp.dir)).map((s) => [cp.dir, s] as const),
      ...(await leftoverRestores(onImage)).map((s) => [onImage, s] as const),
    ];
    if ((await leftoversOf()).length === 0) continue;
    const hold = tryCell ? await tryCell(name) : { release: async () => {} };
    if (!hold) continue;
    try {
      const leftovers = await leftoversOf();
      if (leftovers.length === 0) continue;
      const rec = await loadRecord(cp);
      const backend = backends.get(rec.backend);
      for (const [root, staging] of leftovers) await finishRestore(backend, rec, root, staging);
      await backend.placeData?.(rec, cp.dir);
      touched.push(name);
    } finally {
      await hold.release();
    }
  }
  return touched;
}
