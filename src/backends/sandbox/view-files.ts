// The files Lazarus hands a sandboxed member to read (its CELL_CREDENTIALS manifest, its
// portfolio, the config-dir files its command names), copied into a per-cell dir under
// /run/lazarus/view and bound from there. /proc/self/mountinfo shows each bind's path inside its
// source filesystem (a kernel property), so binding them from the state or the config dir would
// tell every member where the operator keeps those. The copies in the state dir stay the truth:
// this dir is refreshed before each start, session and probe, after a credentials rotation and a
// portfolio change (running members see the new files, as through a bind of the originals), and
// removed with the cell.
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { chmod, lstat, mkdir, open, rename, rm, unlink } from "node:fs/promises";
import path from "node:path";
import { LazarusError, errorMessage, isErrno } from "../../util/errors.js";
import { tempName } from "../../util/fsx.js";
import { RUN_ROOT } from "./argv.js";

export const VIEW_ROOT = `${RUN_ROOT}/view`;

// A cell's dir: named by a digest of the state dir and the cell's uid, so that no state dir's path
// shows in it and two state dirs on a host never share one.
export function cellViewDir(stateRoot: string, cellUid: string): string {
  const digest = createHash("sha256")
    .update(`${path.resolve(stateRoot)}\0${cellUid}`)
    .digest("hex")
    .slice(0, 20);
  return path.join(VIEW_ROOT, digest);
}

export const viewSecretsDir = (view: string): string => path.join(view, "secrets");
export const viewMemberDir = (view: string, home: string): string => path.join(view, "members", home);
export const viewConfigDir = (view: string, home: string): string => path.join(view, "config", home);

export interface ViewOwner {
  uid: number;
  gid: number;
}

// A root-owned directory with exactly this mode (never through a symlink).
async function ownDir(dir: string, mode: number): Promise<void> {
  await mkdir(dir, { recursive: true, mode });
  const st = await lstat(dir);
  if (!st.isDirectory()) throw new LazarusError("NOT_A_DIRECTORY", `${dir} is not a directory; move it away`);
  if ((st.mode & 0o7777) !== mode) await chmod(dir, mode);
}

// A regular file's bytes, opened without following a link and without blocking (a FIFO swapped in
// after a check would otherwise hold the copy, and the reconcile, forever), checked on the handle.
async function readRegular(src: string): Promise<Buffer> {
  const fh = await open(
    src,
    constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY,
  ).catch((err: unknown) => {
    throw isErrno(err, "ELOOP")
      ? new LazarusError("NOT_A_FILE", `${src} is a symbolic link, not a regular file; move it away`)
      : err;
  });
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new LazarusError("NOT_A_FILE", `${src} is not a regular file; move it away`);
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

// Replace dest by a copy of src (owner and mode as given), or remove it when src is absent.
async function copyOrDrop(src: string, dest: string, mode: number, owner?: ViewOwner): Promise<void> {
  let data: Buffer;
  try {
    data = await readRegular(src);
  } catch (err) {
    if (!isErrno(err, "ENOENT")) throw err;
    await rm(dest, { force: true });
    return;
  }
  const tmp = tempName(dest);
  const fh = await open(tmp, "wx", mode);
  try {
    await fh.writeFile(data);
    if (owner) await fh.chown(owner.uid, owner.gid);
    await fh.chmod(mode);
    await fh.close();
    await rename(tmp, dest);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

// The cell's credentials manifest (0400, the cell uid's) and each member's portfolio, as in the
// state dir now.
export async function syncCellView(
  view: string,
  cellDir: string,
  homes: readonly string[],
  owner: ViewOwner,
): Promise<void> {
  try {
    await mkdir(RUN_ROOT, { recursive: true, mode: 0o755 });
    await ownDir(VIEW_ROOT, 0o711);
    await ownDir(view, 0o711);
    await ownDir(viewSecretsDir(view), 0o711);
    await copyOrDrop(
      path.join(cellDir, ".lazarus", "secrets", "credentials.json"),
      path.join(viewSecretsDir(view), "credentials.json"),
      0o400,
      owner,
    );
    await ownDir(path.join(view, "members"), 0o711);
    for (const home of homes) {
      await ownDir(viewMemberDir(view, home), 0o755);
      await copyOrDrop(
        path.join(cellDir, ".lazarus", "members", home, "portfolio.json"),
        path.join(viewMemberDir(view, home), "portfolio.json"),
        0o644,
      );
    }
  } catch (err) {
    throw new LazarusError("VIEW_FAILED", `cannot copy the files members read into ${view}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
}

export interface ConfigFile {
  src: string; // the real file in the config dir
  rel: string; // its path relative to the config dir
}

// The config-dir files a member's command names, copied (read-only, their exec bits kept) into the
// member's own config dir of the view; returns each copy's host path.
export async function copyConfigFiles(view: string, home: string, files: readonly ConfigFile[]): Promise<string[]> {
  const dir = viewConfigDir(view, home);
  await rm(dir, { recursive: true, force: true });
  const out: string[] = [];
  for (const f of files) {
    const dest = path.join(dir, f.rel);
    await mkdir(path.dirname(dest), { recursive: true, mode: 0o755 });
    const st = await lstat(f.src);
    await copyOrDrop(f.src, dest, (st.mode & 0o555) | 0o444);
    out.push(dest);
  }
  return out;
}

// The cell's dir and everything in it.
export async function dropCellView(view: string): Promise<void> {
  await rm(view, { recursive: true, force: true });
}
