// Process-table facts from /proc: start time (for pid reuse), state, environment.
import { readFileSync, readdirSync } from "node:fs";

export interface ProcInfo {
  pid: number;
  state: string; // R, S, D, Z, T, ...
  pgid: number;
  sid: number; // session id
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
  return { pid, state: rest[0] ?? "?", pgid: Number(rest[2]), sid: Number(rest[3]), startTime: Number(rest[19]) };
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
  const env = readEnviron(pid);
  if (env === "unreadable") return isAlive(pid, owner.startTime) ? "unverifiable" : "gone";
  return env !== undefined && carriesMarks(env, owner) && isAlive(pid, owner.startTime) ? "owned" : "gone";
}

// pid's initial environment as NAME=value entries; undefined when there is no such process (or it
// is a kernel thread), "unreadable" when this user may not read it (EACCES, EPERM: another user's,
// or a process that made itself non-dumpable).
export function readEnviron(pid: number): string[] | "unreadable" | undefined {
  try {
    return readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === "EACCES" || code === "EPERM" ? "unreadable" : undefined;
  }
}

const carriesMarks = (env: string[], owner: ProcessOwner): boolean =>
  env.includes(`LAZARUS_SPAWN_ID=${owner.spawnId}`) && env.includes(`CELL_ID=${owner.cell}`);

// A process as seen once: a signal goes to it only while its pid still has this start time.
export interface ProcSnapshot {
  pid: number;
  startTime: number;
}

// What can be said of the process group a member's leader made (pgid = the leader's pid):
// "owned" with its live processes, "none" (nothing of it lives, or nothing proves it the member's),
// or "unverifiable" (a process of it lives whose environment this user may not read).
export type GroupProof =
  { status: "owned"; procs: ProcSnapshot[] } | { status: "none" } | { status: "unverifiable"; pid: number };

// The member's process group, proved: its leader lives and is the member's (ownsProcess), or, once
// the leader has exited, every live process of the group is in the session the leader made
// (session id = pgid: the supervisor is started as a session leader, and no process can join or
// make a session with another's id) and carries the member's spawn id and cell in its initial
// environment. A member's child cannot move itself into such a group from elsewhere (setpgid
// works only within one's own session), and a pid reused after the whole group died is a new
// session only if that process calls setsid itself, which the markers alone no longer prove.
export function memberGroupPids(pgid: number | undefined, owner: ProcessOwner): GroupProof {
  if (!pgid || owner.startTime === undefined || !owner.spawnId) return { status: "none" };
  const procs = groupMembers(pgid).flatMap((pid) => {
    const info = procInfo(pid);
    return info && info.pgid === pgid && info.state !== "Z" && info.state !== "X" ? [info] : [];
  });
  if (procs.length === 0) return { status: "none" };
  const leader = ownership(pgid, owner);
  if (leader === "unverifiable") return { status: "unverifiable", pid: pgid };
  const snap = procs.map((p) => ({ pid: p.pid, startTime: p.startTime }));
  if (leader === "owned") return { status: "owned", procs: snap };
  for (const p of procs) {
    if (p.sid !== pgid) return { status: "none" };
    const env = readEnviron(p.pid);
    if (env === "unreadable") return { status: "unverifiable", pid: p.pid };
    if (env === undefined || !carriesMarks(env, owner)) return { status: "none" };
  }
  return { status: "owned", procs: snap };
}

// Pids whose initial environment holds NAME=value (used to find a spawn whose recorder crashed).
export function findByEnv(name: string, value: string): number[] {
  const needle = `${name}=${value}`;
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const env = readEnviron(Number(entry)); // gone, or not ours to read: not found
    if (Array.isArray(env) && env.includes(needle)) found.push(Number(entry));
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
    if (
      info &&
      info.pgid === pid &&
      info.state !== "Z" &&
      ownsProcess(pid, { spawnId, cell, startTime: info.startTime })
    )
      return { pid, startTime: info.startTime };
  }
  return undefined;
}
