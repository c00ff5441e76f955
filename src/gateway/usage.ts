// What each cell spent on models: one line per call in <state>/gateway/usage/<cell>.jsonl (so a
// restart of the gateway keeps the count), held in memory as per-minute buckets so that checking a
// budget's rolling window costs the same after a million calls as after one.
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Budget, Price } from "./state.js";
import type { Usage } from "./apis.js";

export interface UsageRecord {
  time: number; // ms since the epoch
  member: string;
  model: string;
  input: number;
  output: number;
  cost: number;
}

export interface Spent {
  tokens: number;
  cost: number;
}

export const MAX_PERIOD_MS = 31 * 24 * 3600_000;
const BUCKET_MS = 60_000;

interface Bucket {
  start: number;
  tokens: number;
  cost: number;
}

export function costOf(u: Usage, price: Price | undefined): number {
  return price ? (u.input * price.input + u.output * price.output) / 1e6 : 0;
}

export class UsageBook {
  private readonly cells = new Map<string, Promise<Bucket[]>>();
  private readonly streams = new Map<string, WriteStream>();

  constructor(private readonly dir: string) {}

  async record(cell: string, rec: UsageRecord): Promise<void> {
    add(await this.load(cell), rec);
    this.stream(cell).write(`${JSON.stringify(rec)}\n`);
  }

  // Spent within (now - periodMs, now], to the minute.
  async spent(cell: string, now: number, periodMs: number): Promise<Spent> {
    const buckets = await this.load(cell);
    prune(buckets, now);
    const out: Spent = { tokens: 0, cost: 0 };
    for (let i = buckets.length - 1; i >= 0; i--) {
      const b = buckets[i] as Bucket;
      if (b.start + BUCKET_MS <= now - periodMs) break;
      out.tokens += b.tokens;
      out.cost += b.cost;
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([...this.streams.values()].map((s) => new Promise<void>((r) => s.end(r))));
    this.streams.clear();
  }

  private file(cell: string): string {
    return path.join(this.dir, `${cell}.jsonl`);
  }

  private stream(cell: string): WriteStream {
    let s = this.streams.get(cell);
    if (!s) {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      s = createWriteStream(this.file(cell), { flags: "a", mode: 0o600 });
      s.on("error", () => undefined); // a full disk loses a usage line, never the gateway
      this.streams.set(cell, s);
    }
    return s;
  }

  private load(cell: string): Promise<Bucket[]> {
    let p = this.cells.get(cell);
    if (!p) {
      p = readBuckets(this.file(cell));
      this.cells.set(cell, p);
    }
    return p;
  }
}

function add(buckets: Bucket[], r: UsageRecord): void {
  const start = r.time - (r.time % BUCKET_MS);
  let b = buckets.at(-1);
  if (!b || b.start < start) {
    b = { start, tokens: 0, cost: 0 };
    buckets.push(b);
  } else if (b.start > start) {
    b = buckets.find((x) => x.start === start) ?? b; // a clock step back: count it in the newest
  }
  b.tokens += r.input + r.output;
  b.cost += r.cost;
}

function prune(buckets: Bucket[], now: number): void {
  let n = 0;
  while (n < buckets.length && (buckets[n] as Bucket).start + BUCKET_MS <= now - MAX_PERIOD_MS) n++;
  if (n > 0) buckets.splice(0, n);
}

async function readBuckets(file: string): Promise<Bucket[]> {
  const text = await readFile(file, "utf8").catch(() => "");
  const recs: UsageRecord[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    try {
      const r = JSON.parse(line) as UsageRecord;
      if (typeof r.time === "number" && typeof r.input === "number" && typeof r.output === "number") recs.push(r);
    } catch {
      // a torn last line from a crash
    }
  }
  const buckets: Bucket[] = [];
  for (const r of recs.sort((a, b) => a.time - b.time))
    add(buckets, { ...r, cost: typeof r.cost === "number" ? r.cost : 0 });
  return buckets;
}

// Why a budget is spent, or undefined while it is not.
export function overBudget(b: Budget, s: Spent): string | undefined {
  if (b.tokens !== undefined && s.tokens >= b.tokens) return `${s.tokens} of ${b.tokens} tokens`;
  if (b.cost !== undefined && s.cost >= b.cost) return `${s.cost.toFixed(4)} of ${b.cost} in cost`;
  return undefined;
}
