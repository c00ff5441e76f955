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

// Who a recorded member process must be: its kernel start time, and the spawn id and cell name
// Lazarus put in its environment when it started it. Records live where members can write, so
// a pid and start time alone prove nothing (they can be copied from another cell's record).
export interface ProcessOwner {
  startTime: number | undefined;
  spawnId: string | undefined;
  cell: string;
}

// Whether pid is a live (non-zombie) process that this member started: same start time, and
// LAZARUS_SPAWN_ID and CELL_ID in its initial environment. A record without a start time or a
// spawn id never proves ownership.
export function ownsProcess(pid: number | undefined, owner: ProcessOwner): boolean {
  return ownership(pid, owner) === "owned";
}

// What can be said of a recorded member process: "owned" (as ownsProcess), "gone" (no such live
// process with the recorded start time, or it is not the member's), or "unverifiable": a live
// process started exactly when recorded whose environment this process may not read (EACCES or
// EPERM: another user's, or one that made itself non-dumpable, seen by a non-root observer). An
// unverifiable process is neither signalled nor taken for dead.
export type Ownership = "owned" | "gone" | "unverifiable";

export function ownership(pid: number | undefined, owner: ProcessOwner): Ownership {
  if (!pid || owner.startTime === undefined || !owner.spawnId) return "gone";
  if (!isAlive(pid, owner.startTime)) return "gone";
  let env: string[];
  try {
    env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return (code === "EACCES" || code === "EPERM") && isAlive(pid, owner.startTime) ? "unverifiable" : "gone";
  }
  return env.includes(`LAZARUS_SPAWN_ID=${owner.spawnId}`) && env.includes(`CELL_ID=${owner.cell}`) && isAlive(pid, owner.startTime) ? "owned" : "gone";
}

// Whether pid's initial environment holds every one of these NAME=value entries (false when it
// cannot be read: gone, or another user's).
function envHolds(pid: number, needles: string[]): boolean {
  try {
    const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    return needles.every((n) => env.includes(n));
  } catch {
    return false;
  }
}

// The live processes of the process group a member's leader made (pgid = the leader's pid), when
// the group is provably the member's: its leader is (ownsProcess), or, once the leader has exited,
// one of the group's processes started no earlier than the leader and carries the member's spawn
// id and cell in its environment (the kernel does not reuse a pgid while any process of the group
// lives). Empty when nothing of it lives or nothing proves it is the member's.
export function memberGroup(pgid: number | undefined, owner: ProcessOwner): number[] {
  if (!pgid || owner.startTime === undefined || !owner.spawnId) return [];
  const pids = groupMembers(pgid);
  if (pids.length === 0) return [];
  if (ownsProcess(pgid, owner)) return pids;
  const marks = [`LAZARUS_SPAWN_ID=${owner.spawnId}`, `CELL_ID=${owner.cell}`];
  const start = owner.startTime;
  const proof = pids.some((pid) => {
    const info = procInfo(pid);
    return info !== undefined && info.pgid === pgid && info.startTime >= start && envHolds(pid, marks);
  });
  return proof ? pids : [];
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

// The live leader of the process group started with this spawn id for this cell (its pid is its
// own pgid, and its environment names both).
export function findLeader(cell: string, spawnId: string): { pid: number; startTime: number } | undefined {
  for (const pid of findByEnv("LAZARUS_SPAWN_ID", spawnId)) {
    const info = procInfo(pid);
    if (info && info.pgid === pid && info.state !== "Z" && ownsProcess(pid, { spawnId, cell, startTime: info.startTime })) return { pid, startTime: info.startTime };
  }
  return undefined;
}
