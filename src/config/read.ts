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

// Read a regular file whole, or say why not. A symlink is followed only when within is undefined
// or the file it resolves to lies inside within.
export function readRegularFileSync(file: string, maxBytes: number, within?: string): ReadOutcome {
  let target = file;
  let lst: Stats;
  try {
    lst = lstatSync(file);
  } catch (err) {
    if (isErrno(err, "ENOENT")) return { kind: "missing" };
    return { kind: "problem", problem: ioProblem(err) };
  }
  if (lst.isSymbolicLink()) {
    const followed = followLink(file, within);
    if ("problem" in followed) return { kind: "problem", problem: followed };
    target = followed.target;
  } else if (!lst.isFile()) {
    return { kind: "problem", problem: { problem: `it is ${kindOf(lst)}`, hint: REGULAR_ONLY } };
  } else if (within !== undefined) {
    // A regular file whose directory is a link (cells.d -> /elsewhere) is outside all the same.
    const out = outsideProblem(file, within);
    if (out) return { kind: "problem", problem: out };
  }
  if (lst.isFile() && lst.size > maxBytes) return { kind: "problem", problem: tooBig(`${lst.size} bytes`, maxBytes) };
  let fd: number;
  try {
    fd = openSync(target, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW | constants.O_NOCTTY);
  } catch (err) {
    if (isErrno(err, "ENOENT")) return { kind: "missing" };
    return { kind: "problem", problem: ioProblem(err) };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { kind: "problem", problem: { problem: `it is ${kindOf(st)}`, hint: REGULAR_ONLY } };
    if (st.size > maxBytes) return { kind: "problem", problem: tooBig(`${st.size} bytes`, maxBytes) };
    // Read at most one byte past the cap: a file that grows (or a /proc file that lies about its
    // size) is cut off there, never read whole. One read usually does: the buffer fits the size
    // fstat gave (and one byte more, to see the end).
    const chunks: Buffer[] = [];
    let total = 0;
    let want = Math.min(st.size + 1, maxBytes + 1);
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.max(1, Math.min(Math.max(want, 64 * 1024), maxBytes + 1 - total)));
      const bytesRead = readSync(fd, chunk, 0, chunk.length, total);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      total += bytesRead;
      if (total > maxBytes) return { kind: "problem", problem: tooBig("larger than its size said", maxBytes) };
      want = 64 * 1024;
    }
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
export async function readRegularFile(file: string, maxBytes: number, within?: string): Promise<ReadOutcome> {
  return readRegularFileSync(file, maxBytes, within);
}

// Where a symlink leads, when that is a regular file (inside within, when given).
function followLink(file: string, within: string | undefined): { target: string } | ReadProblem {
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
  if (within !== undefined && !isInside(real, within)) {
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

// Whether real (a resolved path) lies in within (resolved here).
export function isInside(real: string, within: string): boolean {
  let root: string;
  try {
    root = realpathSync(within);
  } catch {
    root = path.resolve(within);
  }
  return real === root || real.startsWith(root + path.sep);
}

// Why a file that is no link itself is outside within (a directory on its way is a link that
// leads out), or undefined when it is inside.
function outsideProblem(file: string, within: string): ReadProblem | undefined {
  let real: string;
  try {
    real = realpathSync(file);
  } catch (err) {
    return ioProblem(err);
  }
  if (isInside(real, within)) return undefined;
  return {
    problem: `it is ${real}, outside the config dir (a directory on its way is a symbolic link that leads out)`,
    hint: "make every directory on its way a real directory of the config dir (or a link that stays inside it)",
  };
}
