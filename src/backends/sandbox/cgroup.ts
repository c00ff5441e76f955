// Per-cell and per-member cgroups: limits, containment (kill everything), freezing, OOM counts.
// cgroup v2 when a unified tree with the needed controllers is mounted; otherwise the v1
// hierarchies memory, pids, cpu and freezer, each where it is mounted.
import { existsSync, readFileSync, readdirSync, rmdirSync, statfsSync, writeFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { LazarusError, errorMessage } from "../../util/errors.js";

export interface Resources {
  memoryBytes?: number;
  pids?: number;
  cpu?: number; // cores, e.g. 1.5
}

const CGROUP2_MAGIC = 0x63677270;
const V1 = ["memory", "pids", "cpu", "freezer"] as const;
type V1Controller = (typeof V1)[number];

export type CgroupMode =
  | { kind: "v2"; root: string; controllers: Set<string> }
  | { kind: "v1"; roots: Partial<Record<V1Controller, string>>; unified?: string };

function isCgroup2(dir: string): boolean {
  try {
    return statfsSync(dir).type === CGROUP2_MAGIC;
  } catch {
    return false;
  }
}

function readControllers(dir: string): Set<string> {
  try {
    return new Set(readFileSync(path.join(dir, "cgroup.controllers"), "utf8").trim().split(/\s+/).filter(Boolean));
  } catch {
    return new Set();
  }
}

// What this host offers. LAZARUS_CGROUP_MODE=v1|v2 forces one (v2 uses /sys/fs/cgroup or, on a
// hybrid host, /sys/fs/cgroup/unified, with whatever controllers it has).
export function detectCgroups(
  base = "/sys/fs/cgroup",
  force = process.env.LAZARUS_CGROUP_MODE,
): CgroupMode | undefined {
  const v2root = isCgroup2(base)
    ? base
    : isCgroup2(path.join(base, "unified"))
      ? path.join(base, "unified")
      : undefined;
  const roots: Partial<Record<V1Controller, string>> = {};
  for (const c of V1)
    if (existsSync(path.join(base, c, "cgroup.procs")) && !isCgroup2(path.join(base, c))) roots[c] = path.join(base, c);
  const v2 = v2root ? { kind: "v2" as const, root: v2root, controllers: readControllers(v2root) } : undefined;
  if (force === "v2") return v2;
  if (force === "v1") return Object.keys(roots).length ? { kind: "v1", roots } : undefined;
  // v2 is preferred when it can do the job (memory and pids controllers); else v1 where mounted.
  if (v2 && v2.controllers.has("memory") && v2.controllers.has("pids")) return v2;
  if (Object.keys(roots).length) return { kind: "v1", roots, ...(v2 ? { unified: v2.root } : {}) };
  return v2;
}

// What the mode cannot do, in words for validate/plan.
export function missingFacilities(mode: CgroupMode | undefined, wanted: Resources & { freeze?: boolean }): string[] {
  if (!mode) return ["no cgroup filesystem is mounted under /sys/fs/cgroup"];
  const out: string[] = [];
  const has = (c: string): boolean => (mode.kind === "v2" ? mode.controllers.has(c) : c in mode.roots);
  if (wanted.memoryBytes !== undefined && !has("memory")) out.push(`no ${mode.kind} memory controller`);
  if (wanted.pids !== undefined && !has("pids")) out.push(`no ${mode.kind} pids controller`);
  if (wanted.cpu !== undefined && !has("cpu")) out.push(`no ${mode.kind} cpu controller`);
  return out;
}

const write = (file: string, value: string): void => writeFileSync(file, value);

// One cgroup (a cell or a member), present in every hierarchy of the mode.
export class Cgroup {
  constructor(
    readonly mode: CgroupMode,
    readonly rel: string, // e.g. lazarus/c1-0123abcd/allegro
  ) {}

  // The directories of this cgroup, one per hierarchy.
  dirs(): string[] {
    if (this.mode.kind === "v2") return [path.join(this.mode.root, this.rel)];
    const out = Object.values(this.mode.roots).map((r) => path.join(r as string, this.rel));
    if (this.mode.unified) out.push(path.join(this.mode.unified, this.rel));
    return out;
  }

  private dir(c: V1Controller): string | undefined {
    if (this.mode.kind === "v2")
      return c === "freezer" || this.mode.controllers.has(c) ? path.join(this.mode.root, this.rel) : undefined;
    const r = this.mode.roots[c];
    return r ? path.join(r, this.rel) : undefined;
  }

  // Create it (and its parents), enabling v2 controllers down the path.
  create(): void {
    try {
      if (this.mode.kind === "v2") {
        const wanted = ["memory", "pids", "cpu"].filter((c) =>
          (this.mode as { controllers: Set<string> }).controllers.has(c),
        );
        let dir = this.mode.root;
        for (const part of this.rel.split("/")) {
          if (wanted.length) {
            try {
              write(path.join(dir, "cgroup.subtree_control"), wanted.map((c) => `+${c}`).join(" "));
            } catch {
              // a controller the parent cannot delegate: limits for it are reported missing
            }
          }
          dir = path.join(dir, part);
          mkdirSync(dir, { recursive: true });
        }
      } else for (const d of this.dirs()) mkdirSync(d, { recursive: true });
    } catch (err) {
      throw new LazarusError(
        "CGROUP_FAILED",
        `cannot create cgroup ${this.rel}: ${errorMessage(err)}; Lazarus needs to run as root to use backend sandbox`,
        { cause: err },
      );
    }
  }

  // The files a process writes its pid to, to join this cgroup in every hierarchy.
  procsFiles(): string[] {
    return this.dirs().map((d) => path.join(d, "cgroup.procs"));
  }

  setLimits(r: Resources): void {
    const v2 = this.mode.kind === "v2";
    const mem = this.dir("memory");
    const pids = this.dir("pids");
    const cpu = this.dir("cpu");
    if (r.memoryBytes !== undefined && mem) {
      write(path.join(mem, v2 ? "memory.max" : "memory.limit_in_bytes"), String(r.memoryBytes));
      if (v2 && existsSync(path.join(mem, "memory.swap.max"))) write(path.join(mem, "memory.swap.max"), "0");
    }
    if (r.pids !== undefined && pids) write(path.join(pids, "pids.max"), String(r.pids));
    if (r.cpu !== undefined && cpu) {
      const quota = Math.max(1000, Math.round(r.cpu * 100_000));
      if (v2) write(path.join(cpu, "cpu.max"), `${quota} 100000`);
      else {
        write(path.join(cpu, "cpu.cfs_period_us"), "100000");
        write(path.join(cpu, "cpu.cfs_quota_us"), String(quota));
      }
    }
  }

  // The file whose `oom_kill N` line counts this cgroup's OOM kills.
  oomFile(): string | undefined {
    const mem = this.dir("memory");
    if (!mem) return undefined;
    return path.join(mem, this.mode.kind === "v2" ? "memory.events" : "memory.oom_control");
  }

  oomKills(): number {
    const f = this.oomFile();
    if (!f) return 0;
    try {
      const m = /^oom_kill (\d+)$/m.exec(readFileSync(f, "utf8"));
      return m ? Number(m[1]) : 0;
    } catch {
      return 0;
    }
  }

  // Every process in this cgroup and below it (one hierarchy is enough: all hold the same set).
  pids(): number[] {
    const out = new Set<number>();
    const visit = (dir: string): void => {
      let text = "";
      try {
        text = readFileSync(path.join(dir, "cgroup.procs"), "utf8");
      } catch {
        return;
      }
      for (const l of text.split("\n")) if (l) out.add(Number(l));
      let entries: string[] = [];
      try {
        entries = readdirSync(dir, { withFileTypes: true })
          .filter((e) => e.isDirectory())
          .map((e) => e.name);
      } catch {
        return;
      }
      for (const e of entries) visit(path.join(dir, e));
    };
    const first =
      this.mode.kind === "v2"
        ? path.join(this.mode.root, this.rel)
        : (this.dir("pids") ?? this.dir("freezer") ?? this.dirs()[0]);
    if (first) visit(first);
    return [...out].filter((pid) => !isZombie(pid));
  }

  freeze(frozen: boolean): boolean {
    if (this.mode.kind === "v2") {
      const f = path.join(this.mode.root, this.rel, "cgroup.freeze");
      if (!existsSync(f)) return false;
      write(f, frozen ? "1" : "0");
      return true;
    }
    const d = this.dir("freezer");
    if (!d) return false;
    write(path.join(d, "freezer.state"), frozen ? "FROZEN" : "THAWED");
    return true;
  }

  // Kill every process in the cgroup, however it was started (setsid, double fork, daemons):
  // freeze so nothing forks meanwhile, SIGKILL all, thaw so the kills land. Resolves when empty.
  async killAll(timeoutMs = 5_000): Promise<number[]> {
    const deadline = Date.now() + timeoutMs;
    const killFile = this.mode.kind === "v2" ? path.join(this.mode.root, this.rel, "cgroup.kill") : undefined;
    for (;;) {
      const pids = this.pids();
      if (pids.length === 0) return [];
      if (Date.now() > deadline) return pids;
      if (killFile && existsSync(killFile)) {
        try {
          write(killFile, "1");
        } catch {
          // fall through to signals
        }
      } else {
        let frozen = false;
        try {
          frozen = this.freeze(true);
        } catch {
          frozen = false;
        }
        for (const pid of this.pids()) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // gone
          }
        }
        if (frozen) this.freeze(false);
      }
      await sleep(10);
    }
  }

  // Send a signal to the member's own processes (not bubblewrap's supervisors).
  signal(sig: NodeJS.Signals): void {
    for (const pid of this.pids()) {
      if (comm(pid) === "bwrap") continue;
      try {
        process.kill(pid, sig);
      } catch {
        // gone
      }
    }
  }

  // Remove the cgroup (children first). Only an empty cgroup can go; false when one is busy.
  remove(): boolean {
    let ok = true;
    for (const d of this.dirs()) {
      const rmTree = (dir: string): void => {
        let subs: string[] = [];
        try {
          subs = readdirSync(dir, { withFileTypes: true })
            .filter((e) => e.isDirectory())
            .map((e) => e.name);
        } catch {
          return;
        }
        for (const s of subs) rmTree(path.join(dir, s));
        try {
          rmdirSync(dir);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "ENOENT") ok = false;
        }
      };
      rmTree(d);
    }
    return ok;
  }
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state === "Z" || state === "X";
  } catch {
    return true;
  }
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}
