// The outbox: publication queued on disk, one entry per (cell incarnation, kind spawn|close), in
// <state>/outbox/<cell>.<incarnation>.<kind>.json, each written atomically. The entry is its own
// journal: it says what the comment should read, whether it was posted (and as which comment id),
// and when to try again. A crash at any point converges: an entry not yet written is queued again
// from the cell's files, a post whose id was not recorded is found again on the issue by its marker
// and edited, never posted twice.
import { createHash } from "node:crypto";
import { mkdir, readdir, rm } from "node:fs/promises";
import path from "node:path";
import { readJson, writeJsonAtomic } from "../util/fsx.js";
import { isErrno } from "../util/errors.js";
import { render, type CommentKind, type Facts } from "./render.js";

export type EntryStatus = "pending" | "done" | "failed";

export interface OutboxEntry {
  cell: string;
  life: string; // the incarnation
  kind: CommentKind;
  project: string;
  facts: Facts;
  body: string;
  status: EntryStatus;
  commentId?: number; // once known: posted, or found by its marker
  posted?: string; // digest of the body the comment carries
  recorded?: boolean; // the ledger holds the post (false: it is recorded at the next pass)
  attempts: number;
  nextAt?: string; // not before this time (backoff, Retry-After)
  lastError?: string;
  queuedAt: string;
  updatedAt: string;
}

export const outboxDir = (stateRoot: string): string => path.join(stateRoot, "outbox");
export const entryName = (cell: string, life: string, kind: CommentKind): string => `${cell}.${life}.${kind}.json`;
export const digest = (body: string): string => createHash("sha256").update(body).digest("hex").slice(0, 32);

export async function readEntries(stateRoot: string): Promise<OutboxEntry[]> {
  const dir = outboxDir(stateRoot);
  const names = await readdir(dir).catch((err: unknown) => {
    if (isErrno(err, "ENOENT")) return [] as string[];
    throw err;
  });
  const out: OutboxEntry[] = [];
  for (const n of names.filter((x) => x.endsWith(".json")).sort()) {
    const e = await readJson<OutboxEntry>(path.join(dir, n)).catch(() => undefined);
    if (e && typeof e.cell === "string" && typeof e.body === "string") out.push(e);
  }
  return out;
}

export async function saveEntry(stateRoot: string, e: OutboxEntry): Promise<void> {
  await mkdir(outboxDir(stateRoot), { recursive: true, mode: 0o700 });
  return writeJsonAtomic(path.join(outboxDir(stateRoot), entryName(e.cell, e.life, e.kind)), e, 0o600);
}

export function dropEntry(stateRoot: string, e: Pick<OutboxEntry, "cell" | "life" | "kind">): Promise<void> {
  return rm(path.join(outboxDir(stateRoot), entryName(e.cell, e.life, e.kind)), { force: true });
}

// The entry with these facts: a new one (pending), the same one unchanged, or the existing one
// with its new body pending again (its comment id kept, so the comment is edited).
export function withFacts(
  old: OutboxEntry | undefined,
  cell: string,
  life: string,
  project: string,
  facts: Facts,
  now: string,
): { entry: OutboxEntry; changed: boolean } {
  const body = render(facts);
  if (old && old.body === body) return { entry: old, changed: false };
  const base: OutboxEntry = old ?? {
    cell,
    life,
    kind: facts.kind,
    project,
    facts,
    body,
    status: "pending",
    attempts: 0,
    queuedAt: now,
    updatedAt: now,
  };
  const entry: OutboxEntry = { ...base, project, facts, body, updatedAt: now };
  // A body already on the forge (found by its marker, or posted) needs nothing more.
  if (entry.posted !== digest(body) && entry.status !== "failed") {
    entry.status = "pending";
    entry.attempts = 0;
    delete entry.nextAt;
  }
  return { entry, changed: true };
}
