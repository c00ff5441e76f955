// The ledger (spec I6): an append-only JSONL file where each entry carries the hash of the one before.
import { readFile, stat, truncate } from "node:fs/promises";
import path from "node:path";
import { canonicalJson, sha256 } from "../config/digest.js";
import { appendLine, readJson, writeJsonAtomic } from "../util/fsx.js";
import { isErrno } from "../util/errors.js";
import { serialized } from "../util/serial.js";

export const GENESIS = "0".repeat(64);

export interface LedgerEntry {
  seq: number;
  time: string;
  cell: string;
  action: string;
  reason: string;
  details?: Record<string, unknown>;
  revision?: string; // the config commit (or content hash) the action was applied from
  prev: string; // hash of the previous entry (GENESIS for the first)
  hash: string; // sha256 of this entry without its hash
}

export interface LedgerHead {
  seq: number;
  hash: string;
  time: string;
}

export type LedgerInput = Pick<LedgerEntry, "time" | "cell" | "action" | "reason"> & {
  details?: Record<string, unknown>;
  revision?: string;
};

// The hash an entry carries: sha256 of its canonical JSON without the hash field.
export function entryHash(e: Omit<LedgerEntry, "hash">): string {
  return sha256(canonicalJson(e));
}

// What this process knows of one ledger file: its head, valid while the file's stamp is unchanged.
interface Known {
  stamp: string;
  head: LedgerHead | undefined;
}
const known = new Map<string, Known>();

// ino, size and mtime: another process appending (under the state-dir lock) changes it.
async function stampOf(file: string): Promise<string> {
  try {
    const st = await stat(file);
    return `${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch (err) {
    if (isErrno(err, "ENOENT")) return "absent";
    throw err;
  }
}

// Appends entries. Across processes the state-dir lock makes one writer; inside one process all
// Ledger objects of a file share one queue, so concurrent appends each follow the previous head.
export class Ledger {
  private readonly key: string;

  // guard: what an append runs inside (the state-dir lock, when other processes may append).
  constructor(
    private readonly file: string,
    private readonly headFile: string,
    private readonly guard: <T>(fn: () => Promise<T>) => Promise<T> = (fn) => fn(),
  ) {
    this.key = path.resolve(file);
  }

  // The last entry's seq, hash and time (from the ledger, or the head file when there is none).
  readHead(): Promise<LedgerHead | undefined> {
    return serialized(`ledger:${this.key}`, () => this.currentHead());
  }

  // Append one entry after every append queued before it; resolves once it is durable.
  append(input: LedgerInput): Promise<LedgerEntry> {
    return this.guard(() =>
      serialized(`ledger:${this.key}`, async () => (await this.appendNow([input]))[0] as LedgerEntry),
    );
  }

  // Append entries in this order as one write (one fsync, one head update): all of them are
  // durable when it resolves, or none is recorded. A crash in the middle can leave a prefix of
  // whole lines and a torn one; the torn tail is dropped before the next append (see load).
  appendMany(inputs: LedgerInput[]): Promise<LedgerEntry[]> {
    if (inputs.length === 0) return Promise.resolve([]);
    return this.guard(() => serialized(`ledger:${this.key}`, () => this.appendNow(inputs)));
  }

  private async currentHead(): Promise<LedgerHead | undefined> {
    const stamp = await stampOf(this.file);
    const k = known.get(this.key);
    if (k && k.stamp === stamp) return k.head;
    const head = await this.load();
    known.set(this.key, { stamp: await stampOf(this.file), head });
    return head;
  }

  private async load(): Promise<LedgerHead | undefined> {
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (err) {
      if (isErrno(err, "ENOENT")) return readJson<LedgerHead>(this.headFile);
      throw err;
    }
    // A crash can tear the last line; drop the torn tail before appending after it.
    if (text.length > 0 && !text.endsWith("\n")) {
      const keep = text.lastIndexOf("\n") + 1;
      await truncate(this.file, Buffer.byteLength(text.slice(0, keep)));
      text = text.slice(0, keep);
    }
    const lines = text.split("\n").filter(Boolean);
    const last = lines[lines.length - 1];
    if (!last) return readJson<LedgerHead>(this.headFile);
    const e = JSON.parse(last) as LedgerEntry;
    return { seq: e.seq, hash: e.hash, time: e.time };
  }

  // Line first, then head; if either fails the line is cut off again and the head stays as it was.
  private async appendNow(inputs: LedgerInput[]): Promise<LedgerEntry[]> {
    const head = await this.currentHead();
    const entries: LedgerEntry[] = [];
    let seq = head?.seq ?? 0;
    let prev = head?.hash ?? GENESIS;
    for (const input of inputs) {
      const base: Omit<LedgerEntry, "hash"> = {
        seq: ++seq,
        time: input.time,
        cell: input.cell,
        action: input.action,
        reason: input.reason,
        ...(input.details ? { details: input.details } : {}),
        ...(input.revision ? { revision: input.revision } : {}),
        prev,
      };
      const entry: LedgerEntry = { ...base, hash: entryHash(base) };
      entries.push(entry);
      prev = entry.hash;
    }
    const last = entries[entries.length - 1] as LedgerEntry;
    const next: LedgerHead = { seq: last.seq, hash: last.hash, time: last.time };
    const before = await appendLine(this.file, `${entries.map((e) => JSON.stringify(e)).join("\n")}\n`);
    try {
      await writeJsonAtomic(this.headFile, next);
    } catch (err) {
      await truncate(this.file, before).catch(() => undefined);
      known.delete(this.key);
      throw err;
    }
    known.set(this.key, { stamp: await stampOf(this.file), head: next });
    return entries;
  }
}

export type VerifyResult =
  { ok: true; entries: number } | { ok: false; entries: number; line: number; problem: string };

// Check the whole chain: each line parses, its hash is right, it points at the line before,
// seq counts up by one, and the head file does not claim entries that are missing.
export async function verifyLedger(file: string, headFile: string): Promise<VerifyResult> {
  let text = "";
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if (!isErrno(err, "ENOENT")) throw err;
  }
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  let prev = GENESIS;
  let seq = 0;
  for (let i = 0; i < lines.length; i++) {
    const bad = (problem: string): VerifyResult => ({ ok: false, entries: i, line: i + 1, problem });
    let e: LedgerEntry;
    try {
      e = JSON.parse(lines[i] ?? "") as LedgerEntry;
    } catch {
      return bad("not valid JSON");
    }
    const { hash, ...rest } = e;
    if (entryHash(rest) !== hash) return bad(`entry seq ${e.seq} was edited: its hash does not match its contents`);
    if (e.prev !== prev)
      return bad(`entry seq ${e.seq} does not follow the entry before it (removed or reordered entries)`);
    if (e.seq !== seq + 1)
      return bad(`entry seq ${e.seq} where seq ${seq + 1} was expected (removed or reordered entries)`);
    prev = hash;
    seq = e.seq;
  }
  const head = await readJson<LedgerHead>(headFile);
  if (head && head.seq > seq) {
    return {
      ok: false,
      entries: seq,
      line: lines.length + 1,
      problem: `the ledger ends at seq ${seq} but entries up to seq ${head.seq} were written (entries removed from the end)`,
    };
  }
  if (head && head.seq === seq && head.hash !== prev) {
    return {
      ok: false,
      entries: seq,
      line: lines.length,
      problem: `the last entry (seq ${seq}) differs from the one that was written`,
    };
  }
  return { ok: true, entries: seq };
}

// The newest time recorded, so that time never runs backwards.
export async function lastRecordedTime(headFile: string): Promise<string | undefined> {
  return (await readJson<LedgerHead>(headFile))?.time;
}
