// What cells spent on models, for `lazarus status` and the daemon's /metrics, read from the
// gateway's own files cheaply: status reads a cell's usage/<cell>.jsonl backwards only as far as
// its window reaches; /metrics reads the events file from where it stopped last time.
import { open } from "node:fs/promises";
import path from "node:path";
import { readJson } from "../util/fsx.js";
import { gatewayCellsDir, usageDir, type Budget, type GatewayCellFile } from "./state.js";
import type { UsageRecord } from "./usage.js";

export interface ModelSpend {
  model: string;
  calls: number;
  tokensIn: number;
  tokensOut: number;
  cost: number;
}

export interface CellSpend {
  windowMs: number; // the budget's period, else a day
  budget: { tokens?: number; cost?: number; periodMs: number } | null;
  tokens: number;
  cost: number;
  byModel: ModelSpend[];
}

const DAY_MS = 86_400_000;
const CHUNK = 64 << 10;

// A cell's spending within its budget's window (else the last day), per model; undefined when the
// gateway has served it nothing and serves it no more.
export async function cellSpend(stateRoot: string, cell: string, now: number): Promise<CellSpend | undefined> {
  const file = await readJson<GatewayCellFile>(path.join(gatewayCellsDir(stateRoot), `${cell}.json`)).catch(
    () => undefined,
  );
  const budget: Budget | undefined = file?.budget;
  const windowMs = budget?.periodMs ?? DAY_MS;
  const records = await tailSince(path.join(usageDir(stateRoot), `${cell}.jsonl`), now - windowMs);
  if (!records && !file) return undefined;
  const by = new Map<string, ModelSpend>();
  for (const r of records ?? []) {
    const m = by.get(r.model) ?? { model: r.model, calls: 0, tokensIn: 0, tokensOut: 0, cost: 0 };
    m.calls++;
    m.tokensIn += r.input;
    m.tokensOut += r.output;
    m.cost += r.cost;
    by.set(r.model, m);
  }
  const byModel = [...by.values()].sort((a, b) => a.model.localeCompare(b.model));
  return {
    windowMs,
    budget: budget ? { ...budget } : null,
    tokens: byModel.reduce((n, m) => n + m.tokensIn + m.tokensOut, 0),
    cost: byModel.reduce((n, m) => n + m.cost, 0),
    byModel,
  };
}

// The usage lines of a file newer than `since`, read from its end (lines are appended in time
// order) until one is older; undefined when there is no file.
async function tailSince(file: string, since: number): Promise<UsageRecord[] | undefined> {
  const fh = await open(file, "r").catch(() => undefined);
  if (!fh) return undefined;
  const out: UsageRecord[] = [];
  try {
    let end = (await fh.stat()).size;
    let rest = "";
    while (end > 0) {
      const start = Math.max(0, end - CHUNK);
      const buf = Buffer.alloc(end - start);
      await fh.read(buf, 0, buf.length, start);
      const lines = (buf.toString("utf8") + rest).split("\n");
      rest = start > 0 ? (lines.shift() ?? "") : "";
      for (const line of lines.reverse()) {
        const r = parseUsage(line);
        if (!r) continue;
        if (r.time <= since) return out;
        out.push(r);
      }
      end = start;
    }
    return out;
  } finally {
    await fh.close();
  }
}

function parseUsage(line: string): UsageRecord | undefined {
  if (!line) return undefined;
  try {
    const r = JSON.parse(line) as UsageRecord;
    return typeof r.time === "number" && typeof r.model === "string" && typeof r.input === "number"
      ? { ...r, output: Number(r.output) || 0, cost: Number(r.cost) || 0 }
      : undefined;
  } catch {
    return undefined; // a torn line
  }
}

export interface CallCount {
  cell: string;
  model: string;
  calls: number;
  tokensIn: number;
  tokensOut: number;
  cost: number;
}

// The gateway's calls since the last look, per cell and model served (the daemon's /metrics).
export class GatewayTally {
  private offset = 0;
  private pending = "";

  constructor(private readonly file: string) {}

  async newCounts(): Promise<CallCount[]> {
    const out = new Map<string, CallCount>();
    const fh = await open(this.file, "r").catch(() => undefined);
    if (!fh) return [];
    try {
      const { size } = await fh.stat();
      if (size < this.offset) this.offset = 0; // rotated
      const buf = Buffer.alloc(size - this.offset);
      const { bytesRead } = await fh.read(buf, 0, buf.length, this.offset);
      this.offset += bytesRead;
      const lines = (this.pending + buf.subarray(0, bytesRead).toString("utf8")).split("\n");
      this.pending = lines.pop() ?? "";
      for (const l of lines) {
        const e = parseCall(l);
        if (!e) continue;
        const key = `${e.cell}\0${e.used}`;
        const c = out.get(key) ?? { cell: e.cell, model: e.used, calls: 0, tokensIn: 0, tokensOut: 0, cost: 0 };
        c.calls++;
        c.tokensIn += e.tokensIn;
        c.tokensOut += e.tokensOut;
        c.cost += e.cost;
        out.set(key, c);
      }
    } finally {
      await fh.close();
    }
    return [...out.values()];
  }
}

function parseCall(
  line: string,
): { cell: string; used: string; tokensIn: number; tokensOut: number; cost: number } | undefined {
  try {
    const e = JSON.parse(line) as Record<string, unknown>;
    if (typeof e.cell !== "string" || typeof e.used !== "string") return undefined; // refused: no model served
    const n = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0);
    return { cell: e.cell, used: e.used, tokensIn: n(e.tokensIn), tokensOut: n(e.tokensOut), cost: n(e.cost) };
  } catch {
    return undefined;
  }
}
