// A cell's shared model health: outcomes reported by any member, read by every member's resolve,
// so a provider that fails for one agent is avoided by its teammates.
import { readFile } from "node:fs/promises";
import path from "node:path";
import { appendLine } from "../util/fsx.js";
import { isErrno } from "../util/errors.js";
import type { HealthEvent } from "./next.js";

export function healthFile(cellDir: string): string {
  return path.join(cellDir, ".lazarus", "model-health.jsonl");
}

// One line per outcome; appends of one short line are atomic, so members may report at once.
export async function reportOutcome(cellDir: string, event: HealthEvent): Promise<void> {
  await appendLine(healthFile(cellDir), JSON.stringify({ ...event, time: new Date(event.time).toISOString() }));
}

export async function readHealth(cellDir: string): Promise<HealthEvent[]> {
  let text: string;
  try {
    text = await readFile(healthFile(cellDir), "utf8");
  } catch (err) {
    if (isErrno(err, "ENOENT")) return [];
    throw err;
  }
  const out: HealthEvent[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    try {
      const e = JSON.parse(line) as { time: string; model: string; outcome: HealthEvent["outcome"]; member?: string };
      out.push({ time: Date.parse(e.time), model: e.model, outcome: e.outcome, ...(e.member ? { member: e.member } : {}) });
    } catch {
      // a torn last line from a crash: ignored
    }
  }
  return out;
}
