// A cell's shared model health: outcomes reported by any member, read by every member's resolve,
// so a provider that fails for one agent is avoided by its teammates.
import path from "node:path";
import { appendLine } from "../util/fsx.js";
import { CAPS, readUntrusted } from "../util/safe-fs.js";
import type { HealthEvent } from "./next.js";
import { ERROR_CLASSES } from "./types.js";

const OUTCOMES: ReadonlySet<string> = new Set(["ok", ...ERROR_CLASSES]);

export function healthFile(cellDir: string): string {
  return path.join(cellDir, ".lazarus", "model-health.jsonl");
}

// One line per outcome; appends of one short line are atomic, so members may report at once.
export async function reportOutcome(cellDir: string, event: HealthEvent): Promise<void> {
  await appendLine(healthFile(cellDir), JSON.stringify({ ...event, time: new Date(event.time).toISOString() }));
}

// One reported outcome, or undefined when the line is not one (members write this file).
function parseEvent(line: string): HealthEvent | undefined {
  let e: unknown;
  try {
    e = JSON.parse(line);
  } catch {
    return undefined; // a torn last line from a crash
  }
  if (!e || typeof e !== "object") return undefined;
  const { time, model, outcome, member } = e as Record<string, unknown>;
  const at = typeof time === "string" ? Date.parse(time) : Number.NaN;
  if (Number.isNaN(at) || typeof model !== "string" || typeof outcome !== "string" || !OUTCOMES.has(outcome))
    return undefined;
  return {
    time: at,
    model,
    outcome: outcome as HealthEvent["outcome"],
    ...(typeof member === "string" && member ? { member } : {}),
  };
}

// The cell's model health. The file is written by members: a link, a FIFO, an oversized file or a
// malformed line is ignored (onIgnored says why), never followed, never waited on.
export async function readHealth(cellDir: string, onIgnored?: (why: string) => void): Promise<HealthEvent[]> {
  const r = await readUntrusted(healthFile(cellDir), CAPS.health, cellDir);
  if (!r.ok) {
    if (!r.missing) onIgnored?.(`${healthFile(cellDir)} ${r.reason}; model health ignored`);
    return [];
  }
  const out: HealthEvent[] = [];
  let bad = 0;
  for (const line of r.text.split("\n")) {
    if (!line) continue;
    const e = parseEvent(line);
    if (e) out.push(e);
    else bad++;
  }
  if (bad > 0) onIgnored?.(`${healthFile(cellDir)}: ${bad} malformed line${bad === 1 ? "" : "s"} ignored`);
  return out;
}
