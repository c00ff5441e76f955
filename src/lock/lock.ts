// One reconciler per state dir. The lock file names its holder (pid, start time, command),
// so a second one fails at once saying who holds it, and a lock left by a dead process is taken over.
import { link, open, readFile, rename, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { isAlive, procInfo } from "../backends/proc.js";
import { LazarusError, isErrno } from "../util/errors.js";

export interface LockHolder {
  pid: number;
  startTime?: number;
  command: string;
  host: string;
  since: string;
}

export interface Lock {
  holder: LockHolder;
  release(): Promise<void>;
}

async function readHolder(file: string): Promise<LockHolder | undefined> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as LockHolder;
  } catch (err) {
    if (isErrno(err, "ENOENT")) return undefined;
    return { pid: 0, command: "unreadable lock", host: "", since: "" }; // torn write: its writer died
  }
}

async function tryCreate(file: string, holder: LockHolder): Promise<boolean> {
  try {
    const fh = await open(file, "wx", 0o644);
    try {
      await fh.write(JSON.stringify(holder));
      await fh.sync();
    } finally {
      await fh.close();
    }
    return true;
  } catch (err) {
    if (isErrno(err, "EEXIST")) return false;
    throw err;
  }
}

export function describeHolder(h: LockHolder): string {
  return `pid ${h.pid} (${h.command}, since ${h.since}${h.host && h.host !== hostname() ? ` on ${h.host}` : ""})`;
}

// Take the lock or fail at once naming its holder.
export async function acquireLock(file: string, command: string): Promise<Lock> {
  const holder: LockHolder = {
    pid: process.pid,
    startTime: procInfo(process.pid)?.startTime,
    command,
    host: hostname(),
    since: new Date().toISOString(),
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    if (await tryCreate(file, holder)) {
      return { holder, release: () => releaseLock(file, holder) };
    }
    const current = await readHolder(file);
    if (!current) continue; // released meanwhile
    if (current.host === holder.host && isAlive(current.pid, current.startTime) && current.pid !== 0) {
      throw new LazarusError("LOCKED", `another Lazarus holds the state dir: ${describeHolder(current)}; wait for it to finish or stop it (lock file ${file})`);
    }
    if (current.host !== holder.host && current.pid !== 0) {
      throw new LazarusError("LOCKED", `the state dir is locked from another host: ${describeHolder(current)}; remove ${file} only if that process is gone`);
    }
    await takeOverStale(file, current);
  }
  throw new LazarusError("LOCKED", `could not take the lock ${file}: another Lazarus keeps taking it; try again`);
}

// Move the stale lock aside; if what we moved was not the stale one (another process won
// the race and wrote a fresh lock), put it back without overwriting anything.
async function takeOverStale(file: string, stale: LockHolder): Promise<void> {
  const aside = `${file}.stale.${process.pid}`;
  try {
    await rename(file, aside);
  } catch (err) {
    if (isErrno(err, "ENOENT")) return;
    throw err;
  }
  const moved = await readHolder(aside);
  if (moved && (moved.pid !== stale.pid || moved.since !== stale.since)) {
    await link(aside, file).catch(() => undefined);
  }
  await unlink(aside).catch(() => undefined);
}

async function releaseLock(file: string, holder: LockHolder): Promise<void> {
  const current = await readHolder(file);
  if (current && current.pid === holder.pid && current.since === holder.since) await unlink(file).catch(() => undefined);
}
