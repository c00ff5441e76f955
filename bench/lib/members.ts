// What the supervisord comparisons share: N cells with one `sleep 600` member each, stopping the
// members a state dir recorded (by their process groups, never by pattern), and medians.
import { mkdirSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { writeCells } from "./cells.js";
import { onTeardown } from "./teardown.js";

export function sleepCellDoc(i: number): string {
  return [
    "apiVersion: lazarus/v1",
    "kind: Cell",
    "metadata:",
    `  name: cell-${i}`,
    "spec:",
    `  project: Org/repo#${i}`,
    "  owner: human:alexander",
    "  ttl: 8h",
    "  members:",
    "    - identity: agent:a",
    "      role: executor",
    '      command: ["sleep", "600"]',
  ].join("\n");
}

// cells.d/team-<f>.yaml, 100 cells per file, and an empty portfolios/.
export function writeSleepCells(config: string, n: number): void {
  writeCells(config, n, 100, sleepCellDoc);
  mkdirSync(path.join(config, "portfolios"), { recursive: true });
}

// Dead or a zombie, from /proc/<pid>/stat.
export function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
  } catch {
    return true;
  }
}

// SIGKILL every member's process group recorded in the state dir's cell.json files; their pids.
export function killMembers(state: string): number[] {
  const pids: number[] = [];
  let cells;
  try {
    cells = readdirSync(path.join(state, "cells"), { withFileTypes: true });
  } catch {
    return pids; // no cells yet
  }
  for (const c of cells) {
    if (!c.isDirectory() || c.name.startsWith(".")) continue;
    try {
      const rec = JSON.parse(readFileSync(path.join(state, "cells", c.name, ".lazarus", "cell.json"), "utf8")) as {
        members: { pid?: number }[];
      };
      for (const m of rec.members) if (m.pid) pids.push(m.pid);
    } catch {
      // no record: nothing was started there
    }
  }
  for (const p of pids) {
    try {
      process.kill(-p, "SIGKILL");
    } catch {
      // gone
    }
  }
  return pids;
}

// killMembers, then wait (at most 10 s) until /proc shows them dead or zombies; how many.
export async function stopMembers(state: string): Promise<number> {
  const pids = killMembers(state);
  for (let i = 0; i < 400 && pids.some((p) => !gone(p)); i++) await sleep(25);
  return pids.length;
}

// Have the members a state dir records stopped if the bench is interrupted (bench/lib/teardown.ts);
// returns the function that unregisters that (after the bench's own stopMembers).
export function stopMembersOnTeardown(state: string): () => void {
  return onTeardown(
    () => void killMembers(state),
    () => stopMembers(state),
  );
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
