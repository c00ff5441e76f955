// One writer per state dir. The lock file names its holder (pid, kernel start time, command) and
// exists only complete (written aside, then linked into place). A second command waits up to its
// timeout, then fails naming the holder; a lock whose holder died is taken over at once.
import { unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { formatDuration } from "../config/durations.js";
import { LazarusError, isErrno } from "../util/errors.js";
import { newHolder, publish, readSeen, removeIfOurs, verdict, type LockHolder, type Seen } from "./record.js";

export type { LockHolder } from "./record.js";

export interface Lock {
  holder: LockHolder;
  release(): Promise<void>;
}

export interface LockOptions {
  timeoutMs?: number; // how long to wait for a live holder; 0 (default): fail at once
}

const MAX_BREAK_DEPTH = 6;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// "pid 12 (lazarus apply, since 2026-…)", with the host when it is not this one.
export function describeHolder(h: LockHolder): string {
  return `pid ${h.pid} (${h.command}, since ${h.since}${h.host && h.host !== hostname() ? ` on ${h.host}` : ""})`;
}

// Take the lock, waiting up to timeoutMs for a live holder; then fail naming it.
export async function acquireLock(file: string, command: string, opts: LockOptions = {}): Promise<Lock> {
  const holder = newHolder(command);
  const timeoutMs = Math.max(0, opts.timeoutMs ?? 0);
  const deadline = Date.now() + timeoutMs;
  for (let backoff = 2; ; backoff = Math.min(backoff * 2, 50)) {
    const seen = await tryTake(file, holder, 0);
    if (!seen) return { holder, release: () => removeIfOurs(file, holder) };
    const left = deadline - Date.now();
    if (left <= 0) throw lockedError(file, seen, timeoutMs);
    await sleep(Math.min(backoff * (0.5 + Math.random()), left));
  }
}

// One attempt: undefined when taken, else what holds it ("busy" when it keeps changing hands).
async function tryTake(file: string, holder: LockHolder, depth: number): Promise<Seen | "busy" | undefined> {
  for (let i = 0; i < 3; i++) {
    if (await publish(file, holder)) return undefined;
    const seen = await readSeen(file);
    if (!seen) continue; // released meanwhile
    if (verdict(seen) !== "dead") return seen;
    await breakStale(file, seen, depth);
  }
  return "busy";
}

// Remove the dead generation `stale` of file, race-free: only the holder of the guard
// <file>.break-<id> may, and only while file still is that generation. A guard whose holder
// died is itself broken the same way.
async function breakStale(file: string, stale: Seen, depth: number): Promise<void> {
  if (depth >= MAX_BREAK_DEPTH)
    throw new LazarusError(
      "LOCKED",
      `cannot take over the stale lock ${file}: its takeovers keep dying; remove ${file} and ${file}.break-* by hand`,
    );
  const guard = `${file}.break-${stale.id.replace(/[^A-Za-z0-9]/g, "")}`;
  const breaker = newHolder(`taking over ${file}`);
  if ((await tryTake(guard, breaker, depth + 1)) !== undefined) return sleep(2); // a live breaker is at it
  try {
    const now = await readSeen(file);
    if (now?.id === stale.id) {
      await unlink(file).catch((err: unknown) => {
        if (!isErrno(err, "ENOENT")) throw err;
      });
    }
  } finally {
    await removeIfOurs(guard, breaker);
  }
}

function lockedError(file: string, seen: Seen | "busy", timeoutMs: number): LazarusError {
  const waited =
    timeoutMs > 0
      ? `; waited ${formatDuration(timeoutMs) === "0s" ? `${timeoutMs}ms` : formatDuration(timeoutMs)}`
      : "";
  if (seen === "busy")
    return new LazarusError(
      "LOCKED",
      `could not take the lock ${file}: other processes keep taking it${waited}; try again`,
    );
  const h = seen.holder;
  if (!h)
    return new LazarusError(
      "LOCKED",
      `another Lazarus holds the state dir: its lock ${file} is being written${waited}; try again`,
    );
  if (h.host !== hostname())
    return new LazarusError(
      "LOCKED",
      `the state dir is locked from another host: ${describeHolder(h)}${waited}; remove ${file} only if that process is gone`,
    );
  return new LazarusError(
    "LOCKED",
    `another Lazarus holds the state dir: ${describeHolder(h)}${waited}; wait for it to finish, stop it, or wait longer with --lock-timeout (lock file ${file})`,
  );
}
