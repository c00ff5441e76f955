// The proxy's connection events as events of their cells (lazarus events): one line each, with
// the member, host, port, verdict and why, bytes each way and duration in details.
import { open, readFile } from "node:fs/promises";
import type { EgressEvent } from "./proxy.js";

// What `lazarus events` prints: a ledger entry, or an egress event (which has no seq).
export interface EventEntry {
  seq?: number;
  time: string;
  cell: string;
  action: string;
  reason: string;
  details?: Record<string, unknown>;
  revision?: string;
}

// An egress event as `lazarus events` prints it.
export function egressEntry(e: EgressEvent): EventEntry {
  const size = (n: number): string =>
    n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;
  const reason = `${e.member} → ${e.host}:${e.port}: ${e.reason}${e.verdict === "allowed" ? ` (↑${size(e.bytesUp)} ↓${size(e.bytesDown)}, ${e.durationMs} ms)` : ""}`;
  const { time, cell, ...details } = e;
  return { time, cell, action: e.verdict === "allowed" ? "egress" : "egress-refused", reason, details: { ...details } };
}

// One line of events.jsonl as an entry, or undefined for a torn or foreign line.
export function parseEgressLine(line: string): EventEntry | undefined {
  if (!line.trim()) return undefined;
  try {
    const e = JSON.parse(line) as EgressEvent;
    return typeof e.time === "string" && typeof e.cell === "string" && typeof e.host === "string"
      ? egressEntry(e)
      : undefined;
  } catch {
    return undefined;
  }
}

// The events file and the one it rotated to, oldest first, as one text.
async function readBoth(file: string): Promise<string> {
  const [older, current] = await Promise.all([`${file}.1`, file].map((f) => readFile(f, "utf8").catch(() => "")));
  return `${older ?? ""}${current ?? ""}`;
}

// Every egress event still kept (the events file and its one rotated predecessor), oldest first.
export async function readEgressEntries(file: string): Promise<EventEntry[]> {
  const text = await readBoth(file);
  return text.split("\n").flatMap((l) => parseEgressLine(l) ?? []);
}

export interface Reached {
  host: string; // host:port
  connections: number;
  bytesUp: number;
  bytesDown: number;
}

// The hosts one incarnation of a cell reached (allowed connections since it was created), for its
// close log: most connections first.
export async function reachedHosts(file: string, cell: string, since: string): Promise<Reached[]> {
  const text = await readBoth(file);
  const by = new Map<string, Reached>();
  for (const line of text.split("\n")) {
    const e = parseEvent(line);
    if (!e || e.cell !== cell || e.verdict !== "allowed" || e.time < since) continue;
    const key = `${e.host}:${e.port}`;
    const r = by.get(key) ?? { host: key, connections: 0, bytesUp: 0, bytesDown: 0 };
    r.connections++;
    r.bytesUp += e.bytesUp;
    r.bytesDown += e.bytesDown;
    by.set(key, r);
  }
  return [...by.values()].sort((a, b) => b.connections - a.connections || (a.host < b.host ? -1 : 1));
}

function parseEvent(line: string): EgressEvent | undefined {
  if (!line.trim()) return undefined;
  try {
    const e = JSON.parse(line) as EgressEvent;
    return typeof e.cell === "string" && typeof e.host === "string" ? e : undefined;
  } catch {
    return undefined;
  }
}

// Connection counts by cell and verdict, read incrementally from the events file (the daemon's
// /metrics): each call reads only what was appended since the last.
export class EgressTally {
  private offset = 0;
  private pending = "";

  constructor(private readonly file: string) {}

  async newCounts(): Promise<Map<string, { cell: string; verdict: string; n: number }>> {
    const out = new Map<string, { cell: string; verdict: string; n: number }>();
    const fh = await open(this.file, "r").catch(() => undefined);
    if (!fh) return out;
    try {
      const { size } = await fh.stat();
      if (size < this.offset) this.offset = 0;
      const buf = Buffer.alloc(size - this.offset);
      const { bytesRead } = await fh.read(buf, 0, buf.length, this.offset);
      this.offset += bytesRead;
      const lines = (this.pending + buf.subarray(0, bytesRead).toString("utf8")).split("\n");
      this.pending = lines.pop() ?? "";
      for (const l of lines) {
        const e = parseEvent(l);
        if (!e) continue;
        const key = `${e.cell}\0${e.verdict}`;
        const c = out.get(key) ?? { cell: e.cell, verdict: e.verdict, n: 0 };
        c.n++;
        out.set(key, c);
      }
    } finally {
      await fh.close();
    }
    return out;
  }
}
