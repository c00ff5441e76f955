// Small file helpers: atomic replace (temp file, fsync, rename), durable appends, and what a
// full disk turns into. Every write checks its byte count: a short write is finished or undone.
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { lstat, open, readFile, readdir, rename, stat, unlink, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { LazarusError, isErrno } from "./errors.js";
import { serialized } from "./serial.js";

// Temp files are named <file>.<pid>.<12 hex>.tmp; sweepTempFiles (src/lock/sweep.ts) knows this name.
export const TEMP_RE = /^(.+)\.(\d+)\.([0-9a-f]{12})\.tmp$/;

// A fresh temp name beside file, carrying the writer's pid.
export function tempName(file: string): string {
  return `${file}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
}

// A full disk (or quota) as one line a user can act on; any other error unchanged.
export function spaceError(err: unknown, file: string): unknown {
  if (!isErrno(err, "ENOSPC") && !isErrno(err, "EDQUOT")) return err;
  return new LazarusError("NO_SPACE", `no space left on device while writing ${file}; free space and run again`, {
    cause: err,
  });
}

// Write all of data at the handle's position, looping on short writes.
export async function writeFully(fh: FileHandle, data: Buffer): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const { bytesWritten } = await fh.write(data, off, data.length - off);
    if (bytesWritten <= 0) throw Object.assign(new Error(`write returned ${bytesWritten}`), { code: "EIO" });
    off += bytesWritten;
  }
}

// fsync a directory, so a rename or link in it survives a crash. Callers that rename into the
// same directory at the same time share fsyncs: a call waits for an fsync that starts after it was
// made (so it covers its rename), and every call waiting while one runs is served by the next one.
export function syncDir(dir: string): Promise<void> {
  const key = path.resolve(dir);
  let q = dirSyncs.get(key);
  if (!q) {
    q = { running: undefined, queued: undefined };
    dirSyncs.set(key, q);
  }
  const state = q;
  if (!state.running) {
    state.running = fsyncDirNow(key).finally(() => {
      state.running = undefined;
      if (!state.queued) dirSyncs.delete(key);
    });
    return state.running;
  }
  state.queued ??= state.running
    .catch(() => undefined)
    .then(() => {
      state.queued = undefined;
      return syncDir(key);
    });
  return state.queued;
}

const dirSyncs = new Map<string, { running: Promise<void> | undefined; queued: Promise<void> | undefined }>();

async function fsyncDirNow(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

// fsync every regular file and directory of a tree Lazarus just wrote (never following a link),
// directories after what they hold, so the tree is on disk before it is renamed into place.
export async function syncTree(dir: string): Promise<void> {
  const st = await lstat(dir);
  if (st.isDirectory()) {
    for (const e of await readdir(dir)) await syncTree(path.join(dir, e));
  } else if (!st.isFile()) return;
  const fh = await open(dir, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

// Replace a file's contents atomically: readers see the old or the new file, never a mix.
// mode is set exactly (no umask); an existing file's owner is kept. Writes to one file queue.
export function writeFileAtomic(file: string, data: string | Buffer, mode = 0o644): Promise<void> {
  return serialized(`atomic:${path.resolve(file)}`, () =>
    replace(file, typeof data === "string" ? Buffer.from(data) : data, mode),
  );
}

async function replace(file: string, data: Buffer, mode: number): Promise<void> {
  const tmp = tempName(file);
  const before = await stat(file).catch(() => undefined);
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, "wx", mode);
    await writeFully(fh, data);
    if (before && (before.uid !== process.getuid?.() || before.gid !== process.getgid?.()))
      await keepOwner(fh, before.uid, before.gid);
    await fh.chmod(mode); // the umask can change at any time (it is process-wide): always set the mode
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, file);
    await syncDir(path.dirname(file));
  } catch (err) {
    await fh?.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw spaceError(err, file);
  }
}

// Write a file in place, without a temp file and rename: for a file nobody reads half-written (a
// new file in a cell's staging directory, which nobody sees before its rename; exclusive: it must
// not exist yet) or whose torn state is itself meaningful (a journal entry: an action under way).
// Mode set exactly, the data fsync'd; the caller makes its directory entry durable (syncDir).
export async function writeInPlace(file: string, data: string | Buffer, mode = 0o644, exclusive = true): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(file, exclusive ? "wx" : "w", mode);
    await writeFully(fh, typeof data === "string" ? Buffer.from(data) : data);
    await fh.chmod(mode);
    await fh.sync();
    await fh.close();
    fh = undefined;
  } catch (err) {
    await fh?.close().catch(() => undefined);
    throw spaceError(err, file);
  }
}

// Give the temp file the replaced file's owner; only root may, so others keep their own.
async function keepOwner(fh: FileHandle, uid: number, gid: number): Promise<void> {
  try {
    await fh.chown(uid, gid);
  } catch (err) {
    if (process.getuid?.() === 0 || !(isErrno(err, "EPERM") || isErrno(err, "EINVAL"))) throw err;
  }
}

// JSON, pretty-printed, replaced atomically.
export function writeJsonAtomic(file: string, value: unknown, mode = 0o644): Promise<void> {
  return writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`, mode);
}

// Text replaced atomically.
export function writeTextAtomic(file: string, text: string, mode = 0o644): Promise<void> {
  return writeFileAtomic(file, text, mode);
}

// Append one line and fsync it, so an acknowledged record survives a crash. All or nothing:
// on any failure the file is cut back to its length before, so no torn line is left.
// Returns that length before the line.
export async function appendLine(file: string, line: string): Promise<number> {
  const data = Buffer.from(line.endsWith("\n") ? line : `${line}\n`);
  let fh: FileHandle;
  try {
    // Never through a planted link, never blocking on a FIFO: many of these files sit where members can reach.
    fh = await open(
      file,
      constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK,
      0o644,
    );
  } catch (err) {
    if (isErrno(err, "ELOOP") || isErrno(err, "ENXIO"))
      throw new LazarusError(
        "UNSAFE_FILE",
        `refusing to write ${file}: it is a symbolic link or a FIFO; move it away`,
        { cause: err },
      );
    throw spaceError(err, file);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile())
      throw new LazarusError("UNSAFE_FILE", `refusing to write ${file}: it is not a regular file; move it away`);
    const { size } = st;
    try {
      await writeFully(fh, data);
      await fh.sync();
    } catch (err) {
      await fh.truncate(size).catch(() => undefined);
      await fh.sync().catch(() => undefined);
      throw spaceError(err, file);
    }
    return size;
  } finally {
    await fh.close();
  }
}

// A JSON file's value, or undefined when it does not exist.
export async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as T;
  } catch (err) {
    if (isErrno(err, "ENOENT")) return undefined;
    throw err;
  }
}
