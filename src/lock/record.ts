// The lock file's holder record: published whole with link(2), so it is complete from the moment
// it exists, and read together with an identity that tells one lock generation from the next.
import { randomBytes } from "node:crypto";
import { link, open, unlink, type FileHandle } from "node:fs/promises";
import { hostname } from "node:os";
import { isAlive, procInfo } from "../host/proc.js";
import { isErrno } from "../util/errors.js";
import { spaceError, tempName, writeFully } from "../util/fsx.js";

export interface LockHolder {
  pid: number;
  startTime?: number; // kernel start time of pid (clock ticks since boot): a reused pid is not the holder
  command: string;
  host: string;
  since: string;
  token?: string; // unique per acquisition (absent in records of older versions)
}

export interface Seen {
  holder: LockHolder | undefined; // undefined: not a holder record (an older version mid-write)
  id: string; // this generation of the lock: its token, else its inode and mtime
  ageMs: number;
}

// A record older versions left unreadable is given this long to be completed before it counts as dead.
const UNREADABLE_GRACE_MS = 5_000;

// A holder record for this process.
export function newHolder(command: string): LockHolder {
  return {
    pid: process.pid,
    startTime: procInfo(process.pid)?.startTime,
    command,
    host: hostname(),
    since: new Date().toISOString(),
    token: randomBytes(8).toString("hex"),
  };
}

// Create file holding holder, complete from the first instant; false when file exists.
export async function publish(file: string, holder: LockHolder): Promise<boolean> {
  const tmp = tempName(file);
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, "wx", 0o644);
    await writeFully(fh, Buffer.from(JSON.stringify(holder)));
    await fh.sync();
    await fh.close();
    fh = undefined;
    await link(tmp, file);
    return true;
  } catch (err) {
    if (isErrno(err, "EEXIST")) return false;
    throw spaceError(err, file);
  } finally {
    await fh?.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
  }
}

// The record at file with its identity, or undefined when there is none.
export async function readSeen(file: string): Promise<Seen | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(file, "r");
  } catch (err) {
    if (isErrno(err, "ENOENT")) return undefined;
    throw err;
  }
  try {
    const st = await fh.stat();
    const holder = parseHolder(await fh.readFile("utf8"));
    return { holder, id: holder?.token ?? `i${st.ino}m${Math.trunc(st.mtimeMs)}`, ageMs: Date.now() - st.mtimeMs };
  } finally {
    await fh.close();
  }
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const h = JSON.parse(text) as LockHolder;
    return typeof h === "object" && h !== null && typeof h.pid === "number" ? h : undefined;
  } catch {
    return undefined;
  }
}

// live: never taken from it; dead: taken over at once; foreign: on another host, not ours to judge.
export function verdict(seen: Seen): "live" | "dead" | "foreign" {
  const h = seen.holder;
  if (!h) return seen.ageMs > UNREADABLE_GRACE_MS ? "dead" : "live";
  if (h.host !== hostname()) return "foreign";
  return isAlive(h.pid, h.startTime) ? "live" : "dead";
}

// Remove file if it is still this holder's record (only its holder removes a live record).
export async function removeIfOurs(file: string, holder: LockHolder): Promise<void> {
  const seen = await readSeen(file);
  if (seen?.holder?.token !== undefined && seen.holder.token === holder.token)
    await unlink(file).catch(() => undefined);
}
