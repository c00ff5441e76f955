// What each cell spent on models: one line per call in <state>/gateway/usage/<cell>.jsonl (so a
// restart of the gateway keeps the count), summed over a budget's rolling window.
import { appendFile, mkdir, readFile } from "node:fs/promises";
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
  oldest?: number; // the oldest call still inside the window
}

export const MAX_PERIOD_MS = 31 * 24 * 3600_000;

export function costOf(u: Usage, price: Price | undefined): number {
  return price ? (u.input * price.input + u.output * price.output) / 1e6 : 0;
}

export class UsageBook {
  private readonly cells = new Map<string, Promise<UsageRecord[]>>();

  constructor(private readonly dir: string) {}

  async record(cell: string, rec: UsageRecord): Promise<void> {
    (await this.load(cell)).push(rec);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await appendFile(this.file(cell), `${JSON.stringify(rec)}\n`, { mode: 0o600 });
  }

  async spent(cell: string, now: number, periodMs: number): Promise<Spent> {
    const recs = await this.load(cell);
    const from = now - periodMs;
    while (recs.length > 0 && (recs[0] as UsageRecord).time < now - MAX_PERIOD_MS) recs.shift();
    const out: Spent = { tokens: 0, cost: 0 };
    for (const r of recs) {
      if (r.time <= from) continue;
      out.tokens += r.input + r.output;
      out.cost += r.cost;
      out.oldest ??= r.time;
    }
    return out;
  }

  // Totals per model over a window, for status and metrics.
  async byModel(cell: string, now: number, periodMs: number): Promise<Map<string, Spent>> {
    const out = new Map<string, Spent>();
    for (const r of await this.load(cell)) {
      if (r.time <= now - periodMs) continue;
      const s = out.get(r.model) ?? { tokens: 0, cost: 0 };
      s.tokens += r.input + r.output;
      s.cost += r.cost;
      out.set(r.model, s);
    }
    return out;
  }

  private file(cell: string): string {
    return path.join(this.dir, `${cell}.jsonl`);
  }

  private load(cell: string): Promise<UsageRecord[]> {
    let p = this.cells.get(cell);
    if (!p) {
      p = readRecords(this.file(cell));
      this.cells.set(cell, p);
    }
    return p;
  }
}

async function readRecords(file: string): Promise<UsageRecord[]> {
  const text = await readFile(file, "utf8").catch(() => "");
  const out: UsageRecord[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    try {
      const r = JSON.parse(line) as UsageRecord;
      if (typeof r.time === "number" && typeof r.input === "number" && typeof r.output === "number") out.push(r);
    } catch {
      // a torn last line from a crash
    }
  }
  return out.sort((a, b) => a.time - b.time);
}

// Why a budget is spent, or undefined while it is not.
export function overBudget(b: Budget, s: Spent): string | undefined {
  if (b.tokens !== undefined && s.tokens >= b.tokens) return `${s.tokens} of ${b.tokens} tokens`;
  if (b.cost !== undefined && s.cost >= b.cost) return `${s.cost.toFixed(4)} of ${b.cost} in cost`;
  return undefined;
}
