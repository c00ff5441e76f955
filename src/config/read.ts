// Reading one desired-state file without trusting it: regular files only (a symlink only when it
// resolves to a regular file inside the config dir), opened so that nothing can block (O_NONBLOCK),
// checked again after opening (fstat), and never more than a size cap. The reads are synchronous:
// a config file is small and local, and a fleet's config is a few dozen of them, each read in a
// handful of system calls, where a thread-pool round trip per call cost more than the read.
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readSync,
  realpathSync,
  statSync,
  type Stats,
} from "node:fs";
import path from "node:path";
import { LazarusError, errorMessage, isErrno } from "../util/errors.js";
import { parseMemory } from "./quantity.js";

export const DEFAULT_MAX_FILE_SIZE = 1024 * 1024;

// Why a file could not be read, and what to do about it.
export interface ReadProblem {
  problem: string;
  hint: string;
}

export type ReadOutcome =
  { kind: "bytes"; bytes: Buffer } | { kind: "problem"; problem: ReadProblem } | { kind: "missing" };

// The size cap in bytes: LAZARUS_MAX_FILE_SIZE (set by --max-file-size too), else 1 MiB.
export function maxFileSize(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.LAZARUS_MAX_FILE_SIZE;
  if (text === undefined || text === "") return DEFAULT_MAX_FILE_SIZE;
  const bytes = parseMemory(text);
  if (bytes === undefined || bytes < 1)
    throw new LazarusError(
      "BAD_ENV",
      `LAZARUS_MAX_FILE_SIZE "${text}" is not a size; use bytes or e.g. 512Ki, 1Mi, 4Mi`,
    );
  return bytes;
}

// What a non-regular file is, in words.
export function kindOf(st: Stats): string {
  if (st.isDirectory()) return "a directory";
  if (st.isFIFO()) return "a FIFO (named pipe)";
  if (st.isSocket()) return "a socket";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  if (st.isSymbolicLink()) return "a symbolic link";
  return "not a regular file";
}

const REGULAR_ONLY = "only regular files are read: replace it with a regular file";
const tooBig = (size: string, max: number): ReadProblem => ({
  problem: `it is ${size}, over the ${max}-byte limit`,
  hint: "split it into smaller files, or raise the limit with --max-file-size or LAZARUS_MAX_FILE_SIZE",
});

// An errno error of open/read as a problem a user can act on.
function ioProblem(err: unknown): ReadProblem {
  if (isErrno(err, "EACCES") || isErrno(err, "EPERM")) {
    return {
      problem: "permission denied",
      hint: `make it (and its directory) readable by the user Lazarus runs as (uid ${process.getuid?.() ?? "?"})`,
    };
  }
  if (isErrno(err, "ELOOP"))
    return { problem: "it was replaced by a symbolic link while being read", hint: "run again" };
  return { problem: errorMessage(err), hint: "check the file and run again" };
}

// The real paths of directories, each resolved once for as long as one object is kept: a load of a
// fleet's config reads thousands of files from the same cells.d/ under the same config dir, and
// resolving both again for each file cost more than reading it. Keep one for one load only, so a
// directory replaced by a link is seen at the next load. A directory that cannot be resolved is
// tried again each time.
export class RealDirs {
  private readonly real = new Map<string, string>();

  private readonly inside = new Set<string>();

  // Whether dir was found (by markInside) to resolve inside within.
  insideSeen(dir: string, within: string): boolean {
    return this.inside.has(`${dir}\0${within}`);
  }

  markInside(dir: string, within: string): void {
    this.inside.add(`${dir}\0${within}`);
  }

  of(dir: string): string {
    let real = this.real.get(dir);
    if (real === undefined) {
      real = realpathSync(dir);
      this.real.set(dir, real);
    }
    return real;
  }
}

// Read a regular file whole, or say why not. A symlink is followed only when within is undefined
// or the file it resolves to lies inside within. dirs: where the real paths of the file's
// directory and of within were already resolved (by default, each call resolves them again).
// listed: a directory listing just said the file is a regular file (its entry type), so it is
// opened without an lstat first; if it has become a symlink since (the open refuses to follow
// it), it is looked at again the long way. Every other check is the same.
export function readRegularFileSync(
  file: string,
  maxBytes: number,
  within?: string,
  dirs = new RealDirs(),
  listed = false,
): ReadOutcome {
  if (listed) {
    if (within !== undefined) {
      const out = outsideProblem(file, within, dirs);
      if (out) return { kind: "problem", problem: out };
    }
    const r = readOpened(file, maxBytes, true);
    if (r !== BECAME_LINK) return r;
  }
  let target = file;
  let lst: Stats;
  try {
    lst = lstatSync(file);
  } catch (err) {
    if (isErrno(err, "ENOENT")) return { kind: "missing" };
    return { kind: "problem", problem: ioProblem(err) };
  }
  if (lst.isSymbolicLink()) {
    const followed = followLink(file, within, dirs);
    if ("problem" in followed) return { kind: "problem", problem: followed };
    target = followed.target;
  } else if (!lst.isFile()) {
    return { kind: "problem", problem: { problem: `it is ${kindOf(lst)}`, hint: REGULAR_ONLY } };
  } else if (within !== undefined) {
    // A regular file whose directory is a link (cells.d -> /elsewhere) is outside all the same.
    const out = outsideProblem(file, within, dirs);
    if (out) return { kind: "problem", problem: out };
  }
  if (lst.isFile() && lst.size > maxBytes) return { kind: "problem", problem: tooBig(`${lst.size} bytes`, maxBytes) };
  return readOpened(target, maxBytes, false) as ReadOutcome;
}

const BECAME_LINK = Symbol("became a link");

// Open target without following a link and without blocking, check it is a regular file within
// the cap, and read it. BECAME_LINK: listed, and the open met a symlink.
function readOpened(target: string, maxBytes: number, listed: boolean): ReadOutcome | typeof BECAME_LINK {
  let fd: number;
  try {
    fd = openSync(target, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW | constants.O_NOCTTY);
  } catch (err) {
    if (isErrno(err, "ENOENT")) return { kind: "missing" };
    if (listed && isErrno(err, "ELOOP")) return BECAME_LINK;
    return { kind: "problem", problem: ioProblem(err) };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { kind: "problem", problem: { problem: `it is ${kindOf(st)}`, hint: REGULAR_ONLY } };
    if (st.size > maxBytes) return { kind: "problem", problem: tooBig(`${st.size} bytes`, maxBytes) };
    // Read at most one byte past the cap: a file that grows (or a /proc file that lies about its
    // size) is cut off there, never read whole. One buffer usually does: it fits the size fstat gave
    // and one byte more, so the read that sees the end goes into the same buffer. (A file that says
    // it is empty, as /proc files do, is read 64 KiB at a time from the start.)
    const chunks: Buffer[] = [];
    let total = 0;
    let buf = Buffer.allocUnsafe(Math.min(st.size > 0 ? st.size + 1 : 64 * 1024, maxBytes + 1));
    let filled = 0;
    for (;;) {
      if (filled === buf.length) {
        chunks.push(buf);
        buf = Buffer.allocUnsafe(Math.min(64 * 1024, maxBytes + 1 - total));
        filled = 0;
      }
      const wanted = buf.length - filled;
      const bytesRead = readSync(fd, buf, filled, wanted, total);
      if (bytesRead === 0) break;
      filled += bytesRead;
      total += bytesRead;
      if (total > maxBytes) return { kind: "problem", problem: tooBig("larger than its size said", maxBytes) };
      // A short read that brought the file to the size fstat gave is its end: no read more to see
      // it (any other short read, e.g. of a file that shrank or a /proc file, reads on to the end).
      if (bytesRead < wanted && total === st.size) break;
    }
    chunks.push(buf.subarray(0, filled));
    return { kind: "bytes", bytes: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total) };
  } catch (err) {
    return { kind: "problem", problem: ioProblem(err) };
  } finally {
    try {
      closeSync(fd);
    } catch {
      // closing a read-only descriptor cannot lose anything
    }
  }
}

// The same, for callers that await (kept for the daemon's cache and the portfolio loader).
export async function readRegularFile(
  file: string,
  maxBytes: number,
  within?: string,
  dirs?: RealDirs,
  listed?: boolean,
): Promise<ReadOutcome> {
  return readRegularFileSync(file, maxBytes, within, dirs, listed);
}

// Where a symlink leads, when that is a regular file (inside within, when given).
function followLink(file: string, within: string | undefined, dirs: RealDirs): { target: string } | ReadProblem {
  let real: string;
  try {
    real = realpathSync(file);
  } catch (err) {
    if (isErrno(err, "ENOENT"))
      return {
        problem: "it is a dangling symbolic link (its target does not exist)",
        hint: "point it at an existing file, or replace it with a regular file",
      };
    if (isErrno(err, "ELOOP")) return { problem: "it is a symbolic link loop", hint: "replace it with a regular file" };
    return ioProblem(err);
  }
  if (within !== undefined && !isInside(real, within, dirs)) {
    return {
      problem: `it is a symbolic link to ${real}, outside the config dir`,
      hint: "a symlink is followed only to a regular file inside the config dir; copy the file in instead",
    };
  }
  let st: Stats;
  try {
    st = statSync(real);
  } catch (err) {
    return ioProblem(err);
  }
  if (!st.isFile()) return { problem: `it is a symbolic link to ${kindOf(st)} (${real})`, hint: REGULAR_ONLY };
  return { target: real };
}

// Whether real (a resolved path) lies in within (resolved here, or by dirs).
export function isInside(real: string, within: string, dirs = new RealDirs()): boolean {
  let root: string;
  try {
    root = dirs.of(within);
  } catch {
    root = path.resolve(within);
  }
  return real === root || real.startsWith(root + path.sep);
}

// Why a file that is no link itself is outside within (a directory on its way is a link that
// leads out), or undefined when it is inside. Not a link itself, the file resolves to its
// directory's real path and its own name.
function outsideProblem(file: string, within: string, dirs: RealDirs): ReadProblem | undefined {
  const dir = path.dirname(file);
  // Every file of a directory found inside within is inside too: the thousands of files of one
  // cells.d/ are judged once.
  if (dirs.insideSeen(dir, within)) return undefined;
  let real: string;
  try {
    real = path.join(dirs.of(dir), path.basename(file));
  } catch (err) {
    return ioProblem(err);
  }
  if (isInside(real, within, dirs)) {
    if (isInside(dirs.of(dir), within, dirs)) dirs.markInside(dir, within);
    return undefined;
  }
  return {
    problem: `it is ${real}, outside the config dir (a directory on its way is a symbolic link that leads out)`,
    hint: "make every directory on its way a real directory of the config dir (or a link that stays inside it)",
  };
}
