// Source: member exits. A member this daemon started reports its own exit (the backends' onExit,
// wired in daemon.ts); the members it adopted (started by an earlier run or by `apply`) are kept
// here by pid and kernel start time, and the tick asks which of their cells lost one.
import { isAlive } from "../../host/proc.js";

export interface Pid {
  pid: number;
  startTime?: number;
}

export class MemberPids {
  private readonly byCell = new Map<string, Pid[]>();

  // The members of the cell last seen running (none: nothing to watch).
  set(cell: string, pids: Pid[]): void {
    if (pids.length > 0) this.byCell.set(cell, pids);
    else this.byCell.delete(cell);
  }

  delete(cell: string): void {
    this.byCell.delete(cell);
  }

  // The cells one of whose members is no longer alive.
  exited(): string[] {
    const out: string[] = [];
    for (const [cell, pids] of this.byCell) if (pids.some((m) => !isAlive(m.pid, m.startTime))) out.push(cell);
    return out;
  }
}
