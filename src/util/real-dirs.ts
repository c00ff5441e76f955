// Directories Lazarus writes into or deletes in, inside a cell a member can change: each must be
// a real directory all the way down from the cell dir. Whatever a member planted in the way (a
// symbolic link, a FIFO, a file) is moved aside, never followed, and reported.
import { randomBytes } from "node:crypto";
import { lstat, mkdir, rename } from "node:fs/promises";
import path from "node:path";
import { BugError, isErrno } from "./errors.js";
import { fileKind } from "./safe-fs.js";

export interface Planted {
  path: string; // where it was
  movedTo: string; // where it is now, beside it
  kind: string; // symbolic link, FIFO, ...
}

function asideName(p: string): string {
  return `${p}.planted-${new Date().toISOString().replace(/[-:.]/g, "")}-${randomBytes(3).toString("hex")}`;
}

async function moveAside(p: string, kind: string, out: Planted[]): Promise<void> {
  const movedTo = asideName(p);
  await rename(p, movedTo);
  out.push({ path: p, movedTo, kind });
}

// Make dir, and every directory between root (exclusive) and it, a real directory, creating what
// is missing. Returns what was moved aside.
export async function ensureRealDir(root: string, dir: string, mode = 0o755): Promise<Planted[]> {
  const rel = path.relative(root, dir);
  if (rel.startsWith("..") || path.isAbsolute(rel)) throw new BugError(`${dir} is not inside ${root}`);
  const planted: Planted[] = [];
  let p = root;
  for (const part of rel ? rel.split(path.sep) : []) {
    p = path.join(p, part);
    const st = await lstat(p).catch((err: unknown) => {
      if (isErrno(err, "ENOENT")) return undefined;
      throw err;
    });
    if (st?.isDirectory()) continue;
    if (st) await moveAside(p, fileKind(st), planted);
    await mkdir(p, { mode }).catch((err: unknown) => {
      if (!isErrno(err, "EEXIST")) throw err;
    });
    const now = await lstat(p);
    if (!now.isDirectory()) throw new BugError(`${p} is still not a directory`);
  }
  return planted;
}

// A file Lazarus writes (appends to) must be a regular file or absent: anything else is moved aside.
export async function ensureRegularOrAbsent(file: string): Promise<Planted[]> {
  const st = await lstat(file).catch((err: unknown) => {
    if (isErrno(err, "ENOENT")) return undefined;
    throw err;
  });
  const planted: Planted[] = [];
  if (st && !st.isFile()) await moveAside(file, fileKind(st), planted);
  return planted;
}
