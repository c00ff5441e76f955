// The process backend: each member runs detached in its own process group (spec §6.1, level 1).
import { existsSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { restoreCheckpoint } from "../checkpoints/checkpoint.js";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Backend, MemberRef, SessionSpawn, SessionSpec, StartSpec, Started } from "./backend.js";
import { scriptPath, sessionCommand } from "./session.js";
import type { CellRecord, MemberRecord } from "../cells/record.js";
import { memberEnv } from "./env.js";
import {
  findByEnv,
  findLeader,
  groupMembers,
  isAlive,
  memberGroupPids,
  ownsProcess,
  procInfo,
  type ProcSnapshot,
} from "../host/proc.js";
import { spawnSupervised } from "./spawn.js";
import { LazarusError } from "../util/errors.js";

// The variable that marks a session's processes with the cell incarnation's uid.
const SESSION_MARK = "LAZARUS_SESSION_CELL";

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal); // not a group leader after all
    } catch {
      // already gone
    }
  }
}

// Signal each process still running with the start time it was seen with; how many were signalled.
function signalProved(procs: ProcSnapshot[], signal: NodeJS.Signals): number {
  let n = 0;
  for (const p of procs) {
    if (!isAlive(p.pid, p.startTime)) continue;
    try {
      process.kill(p.pid, signal);
      n++;
    } catch {
      // gone since
    }
  }
  return n;
}

// `trap ":" HUP` keeps the wrapper alive when the group gets SIGHUP (a portfolio change) while the
// command, exec'd with default dispositions, receives it.
const WRAPPER =
  'trap ":" HUP; "$@"; code=$?; echo "$code" > "$LAZARUS_EXIT_FILE.tmp" && mv -f "$LAZARUS_EXIT_FILE.tmp" "$LAZARUS_EXIT_FILE"; exit "$code"';

export class ProcessBackend implements Backend {
  readonly name = "process";

  // onExit: called when a process this backend started ends (the daemon's drift signal).
  // stateRoot: where a cell incarnation that ran sessions is noted (sessions/<uid>), so that only
  // those cells pay for the process-table scan at close; without it every close scans.
  constructor(
    private readonly hostEnv: NodeJS.ProcessEnv = process.env,
    private readonly onExit?: (spec: StartSpec, pid: number) => void,
    private readonly stateRoot?: string,
  ) {}

  private sessionNote(rec: CellRecord): string | undefined {
    return this.stateRoot ? path.join(this.stateRoot, "sessions", rec.uid) : undefined;
  }

  // node's spawn is used rather than execa: the child must outlive us, detached, with its
  // output going straight to a file we never read back.
  async prepareCell(): Promise<void> {
    // members run as Lazarus's own user: nothing to hand over
  }

  async start(_rec: CellRecord, spec: StartSpec): Promise<Started> {
    const env = memberEnv(spec, this.hostEnv);
    await mkdir(path.join(spec.home, ".hermes"), { recursive: true });
    await mkdir(path.join(spec.home, ".tmp"), { recursive: true });
    await mkdir(path.dirname(spec.logFile), { recursive: true });
    // A small sh wrapper records the command's exit code (its mtime is the exit time), so a
    // later run knows how the member ended even though Lazarus was not its parent.
    return spawnSupervised(
      spec,
      "/bin/sh",
      ["-c", WRAPPER, "lazarus-member", ...spec.command],
      { cwd: spec.home, env },
      this.onExit,
    );
  }

  // A session runs as Lazarus's own user in the member's home with the member's environment, as
  // its processes do (no containment: see lazarus verify). No spawn id or exit file: it is never
  // mistaken for the member's supervised process. SESSION_MARK names the cell incarnation, so that
  // closing the cell ends the session and what it started (stopCell).
  async session(rec: CellRecord, spec: SessionSpec): Promise<SessionSpawn> {
    const env = memberEnv({ ...spec, logFile: "", exitFile: "", spawnId: "" }, this.hostEnv);
    delete env.LAZARUS_EXIT_FILE;
    delete env.LAZARUS_SPAWN_ID;
    env.LAZARUS_SESSION = spec.sessionId;
    env[SESSION_MARK] = rec.uid;
    const note = this.sessionNote(rec);
    if (note) {
      await mkdir(path.dirname(note), { recursive: true, mode: 0o700 });
      await writeFile(note, "");
    }
    if (spec.tty?.term) env.TERM = spec.tty.term;
    await mkdir(path.join(spec.home, ".hermes"), { recursive: true });
    await mkdir(path.join(spec.home, ".tmp"), { recursive: true });
    const { command, shellVar } = sessionCommand(spec, spec.shell, spec.tty ? scriptPath() : undefined);
    env.SHELL = shellVar;
    return { file: command[0] as string, args: command.slice(1), env, cwd: spec.home, stdio: "pipe" };
  }

  // Alive and provably this member's: its start time, spawn id and cell in its environment.
  isAlive(m: MemberRef): boolean {
    return ownsProcess(m.pid, { startTime: m.startTime, spawnId: m.spawnId, cell: m.cell });
  }

  // The member's whole process group is stopped, its leader or not: children left in the group
  // after the leader exited (`sh -c 'sleep 3600 & exit 1'`) go too (memberGroupPids proves the
  // group is the member's). A member whose process lives but cannot be proved its own (its
  // environment unreadable to this user) is not stopped, and the stop fails: nothing may take it
  // for stopped (a restart would start a second copy; a scrub would delete a live member's tree).
  async stop(rec: CellRecord, m: MemberRecord, timeoutMs: number): Promise<void> {
    if (m.status === "starting" && m.spawnId) {
      const found = this.find(rec.name, m.spawnId);
      if (found)
        await this.stopGroup(
          rec,
          m,
          { cell: rec.name, pid: found.pid, startTime: found.startTime, spawnId: m.spawnId },
          timeoutMs,
        );
    }
    if (m.pid)
      await this.stopGroup(
        rec,
        m,
        { cell: rec.name, pid: m.pid, startTime: m.startTime, spawnId: m.spawnId },
        timeoutMs,
      );
  }

  // SIGTERM to the proved group, SIGKILL after timeoutMs. Signals go pid by pid, each only while
  // its pid still has the start time it was seen with. Before SIGKILL the group is proved again:
  // still the member's while one of the processes seen at SIGTERM lives on in it (the kernel does
  // not reuse a pgid while a process of the group lives), else only if it proves itself anew.
  private async stopGroup(rec: CellRecord, m: MemberRecord, ref: MemberRef, timeoutMs: number): Promise<void> {
    const pgid = ref.pid as number;
    const proof = memberGroupPids(pgid, { startTime: ref.startTime, spawnId: ref.spawnId, cell: ref.cell });
    if (proof.status === "unverifiable") {
      throw new LazarusError(
        "STOP_FAILED",
        `cannot stop ${m.identity} of cell ${rec.name}: process ${proof.pid} of its group lives but its environment cannot be read by this user (uid ${process.getuid?.() ?? "?"}), so it cannot be proved the member's; nothing was stopped. Run lazarus as the user its members run as (or as root)`,
      );
    }
    if (proof.status === "none") return;
    const seen = proof.procs;
    signalProved(seen, "SIGTERM");
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (groupMembers(pgid).length === 0) return;
      await sleep(25);
    }
    const ours = (): ProcSnapshot[] => {
      const now = groupMembers(pgid).flatMap((pid) => {
        const i = procInfo(pid);
        return i && i.pgid === pgid ? [{ pid, startTime: i.startTime }] : [];
      });
      if (now.some((p) => seen.some((s) => s.pid === p.pid && s.startTime === p.startTime))) return now;
      const again = memberGroupPids(pgid, { startTime: ref.startTime, spawnId: ref.spawnId, cell: ref.cell });
      return again.status === "owned" ? again.procs : [];
    };
    for (let i = 0; i < 200; i++) {
      const left = ours();
      if (left.length === 0) return;
      signalProved(left, "SIGKILL");
      await sleep(10);
    }
    throw new LazarusError(
      "STOP_FAILED",
      `process group ${pgid} of ${m.identity} (cell ${rec.name}) survived SIGKILL: ${ours()
        .map((p) => p.pid)
        .join(", ")}`,
    );
  }

  signal(rec: CellRecord, m: MemberRecord, sig: NodeJS.Signals): boolean {
    if (!m.pid || !this.isAlive({ cell: rec.name, pid: m.pid, startTime: m.startTime, spawnId: m.spawnId }))
      return false;
    try {
      process.kill(-m.pid, sig);
      return true;
    } catch {
      return false;
    }
  }

  async restore(_rec: CellRecord, base: string, file: string, dirs: readonly string[]): Promise<void> {
    await restoreCheckpoint(file, base, dirs);
  }

  async clear(_rec: CellRecord, base: string, dirs: readonly string[]): Promise<void> {
    for (const d of dirs) await rm(path.join(base, d), { recursive: true, force: true });
  }

  // SIGSTOP/SIGCONT each live member's process group (processes that left the group are missed:
  // the process backend does not contain its members).
  async freeze(rec: CellRecord, frozen: boolean): Promise<void> {
    for (const m of rec.members)
      if (m.pid && this.isAlive({ cell: rec.name, pid: m.pid, startTime: m.startTime, spawnId: m.spawnId }))
        signalGroup(m.pid, frozen ? "SIGSTOP" : "SIGCONT");
  }

  // The members' groups are stopped one by one (stop); what remains are the sessions (lazarus
  // shell / exec) of this incarnation and whatever they started: every process whose initial
  // environment carries the mark, by pid (a session shares the process group of the lazarus
  // command that runs it, which must live on to record the end). SIGTERM, then SIGKILL after 2 s;
  // the pids that survive. A process that cleared its environment is not found: the process
  // backend contains nothing (docs/isolation.md).
  async stopCell(rec: CellRecord): Promise<number[]> {
    // The marked processes, each with the start time read when its environment matched (a pid
    // reused since is spared). The table is scanned once per phase; in between only their own
    // /proc entries are polled.
    const marked = (): { pid: number; start: number }[] =>
      findByEnv(SESSION_MARK, rec.uid)
        .filter((pid) => pid !== process.pid && isAlive(pid, undefined))
        .map((pid) => ({ pid, start: procInfo(pid)?.startTime ?? -1 }));
    const signal = async (
      found: { pid: number; start: number }[],
      sig: NodeJS.Signals,
      polls: number,
      every: number,
    ): Promise<void> => {
      for (const p of found) {
        try {
          if (isAlive(p.pid, p.start)) process.kill(p.pid, sig);
        } catch {
          // gone
        }
      }
      for (let i = 0; i < polls && found.some((p) => isAlive(p.pid, p.start)); i++) await sleep(every);
    };
    const note = this.sessionNote(rec);
    if (note && !existsSync(note)) return [];
    await signal(marked(), "SIGTERM", 80, 25);
    await signal(marked(), "SIGKILL", 200, 10); // and what was started meanwhile
    const left = marked().map((p) => p.pid);
    if (left.length === 0 && note) await rm(note, { force: true });
    return left;
  }

  async releaseCell(): Promise<void> {
    // nothing held
  }

  find(cell: string, spawnId: string): Started | undefined {
    return findLeader(cell, spawnId);
  }
}
