// CPU time of a process tree, from a cgroup made for it (cgroup v1 cpuacct, or v2 cpu.stat):
// every process started inside it is counted, including detached ones that nobody waits for
// (members, log pumps, a spawner), which getrusage would miss. Needs write access to the cgroup
// fs (root); undefined where there is none.
//
//   const g = cpuGroup("lazarus");          // a fresh cgroup, or undefined
//   g.wrap("node", [...])                   // ["sh", ["-c", 'echo $$ > …/cgroup.procs && exec "$@"', "sh", "node", …]]
//   g.add(pid)                              // move a running process in (its later children follow)
//   g.usageMs()                             // CPU (user + system) of everything that ran in it so far
//   g.remove()                              // rmdir once its processes are gone (retried; left if busy)
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import path from "node:path";

export interface CpuGroup {
  dir: string;
  wrap(file: string, args: string[]): [string, string[]];
  add(pid: number): void;
  usageMs(): number;
  remove(): void;
}

export function cpuGroup(name: string): CpuGroup | undefined {
  const v1 = "/sys/fs/cgroup/cpuacct";
  const v2 = "/sys/fs/cgroup";
  let dir: string;
  let usageMs: () => number;
  try {
    if (existsSync(path.join(v1, "cpuacct.usage"))) {
      dir = path.join(v1, `lazarus-bench-${process.pid}-${name}`);
      mkdirSync(dir, { recursive: true });
      usageMs = () => Number(readFileSync(path.join(dir, "cpuacct.usage"), "utf8")) / 1e6;
    } else if (existsSync(path.join(v2, "cgroup.controllers"))) {
      dir = path.join(v2, `lazarus-bench-${process.pid}-${name}`);
      mkdirSync(dir, { recursive: true });
      usageMs = () =>
        Number(/usage_usec (\d+)/.exec(readFileSync(path.join(dir, "cpu.stat"), "utf8"))?.[1] ?? Number.NaN) / 1e3;
    } else return undefined;
    usageMs();
  } catch {
    return undefined;
  }
  const procs = path.join(dir, "cgroup.procs");
  return {
    dir,
    wrap: (file, args) => ["sh", ["-c", `echo $$ > '${procs}' && exec "$@"`, "sh", file, ...args]],
    add: (pid) => writeFileSync(procs, String(pid)),
    usageMs,
    remove: () => {
      for (let i = 0; i < 40; i++) {
        try {
          rmdirSync(dir);
          return;
        } catch {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50); // its last processes are exiting
        }
      }
    },
  };
}
