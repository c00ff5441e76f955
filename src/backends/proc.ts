// Process-table facts from /proc: start time (for pid reuse), state, environment.
import { readFileSync, readdirSync } from "node:fs";

export interface ProcInfo {
  pid: number;
  state: string; // R, S, D, Z, T, ...
  pgid: number;
  startTime: number; // clock ticks since boot
}

// What the kernel says of pid right now, or undefined when there is no such process.
export function procInfo(pid: number): ProcInfo | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name may contain spaces and parentheses: fields start after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { pid, state: rest[0] ?? "?", pgid: Number(rest[2]), startTime: Number(rest[19]) };
}

// A member is alive when its pid exists, started when we recorded, and is not a zombie.
export function isAlive(pid: number | undefined, startTime: number | undefined): boolean {
  if (!pid) return false;
  const info = procInfo(pid);
  if (!info || info.state === "Z" || info.state === "X") return false;
  return startTime === undefined || info.startTime === startTime;
}

// Pids whose initial environment holds NAME=value (used to find a spawn whose recorder crashed).
export function findByEnv(name: string, value: string): number[] {
  const needle = `${name}=${value}`;
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = readFileSync(`/proc/${entry}/environ`, "utf8");
      if (env.split("\0").includes(needle)) found.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

// Live (non-zombie) processes of a process group. Members' groups outlive their leader when a
// child ignores SIGTERM, so stopping waits for the whole group.
export function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const info = procInfo(Number(entry));
    if (info && info.pgid === pgid && info.state !== "Z" && info.state !== "X") out.push(info.pid);
  }
  return out;
}

// The live leader of the process group started with this spawn id (its pid is its own pgid).
export function findLeader(_cell: string, spawnId: string): { pid: number; startTime: number } | undefined {
  for (const pid of findByEnv("LAZARUS_SPAWN_ID", spawnId)) {
    const info = procInfo(pid);
    if (info && info.pgid === pid && info.state !== "Z") return { pid, startTime: info.startTime };
  }
  return undefined;
}
