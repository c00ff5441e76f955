// Benchmark: what the sandbox costs per member next to the process backend, measured side by
// side in one run (the two take turns, so a noisy machine slows both alike).
// Usage (as root, with bubblewrap): npx tsx bench/sandbox.ts [members=20] [rounds=5]
// Start cost: from start() to the member's command having run its first line (it writes a file).
// Memory: proportional set size (Pss) of every process a member costs, idle.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Backend, StartSpec } from "../src/backends/backend.js";
import { ProcessBackend } from "../src/backends/process.js";
import { SandboxBackend } from "../src/backends/sandbox/sandbox.js";
import { sandboxHost } from "../src/backends/sandbox/host.js";
import type { CellRecord, MemberRecord } from "../src/cells/record.js";
import { hostSettings } from "../src/host/settings.js";

const MEMBERS = Number(process.argv[2] ?? 20);
const ROUNDS = Number(process.argv[3] ?? 5);
if (sandboxHost().problems.length) {
  console.log(`skipped: ${sandboxHost().problems.join("; ")}`);
  process.exit(0);
}

const root = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-sbx-"));
// STAGED=1 keeps the state dir closed to others (0700, as mkdtemp makes it), so every start stages
// the cell dir through a private mount namespace; by default it is 0711, as /var/lib is.
if (process.env.STAGED !== "1") chmodSync(root, 0o711);
const settings = hostSettings({
  LAZARUS_UID_RANGE: "250000-250099",
  LAZARUS_CGROUP_ROOT: `lazarus-bench-${process.pid}`,
});
const backends: Record<string, Backend> = {
  process: new ProcessBackend({ PATH: process.env.PATH }),
  sandbox: new SandboxBackend(root, settings),
};

function record(name: string, backend: "process" | "sandbox"): CellRecord {
  const now = new Date().toISOString();
  return {
    formatVersion: 1,
    uid: `${name}0123456789`.slice(0, 16),
    name,
    state: "active",
    project: "bench#1",
    owner: "human:bench",
    backend,
    labels: {},
    sourceFile: "bench",
    ttlMs: 1,
    graceMs: 1,
    retentionMs: 1,
    policy: { allowGuests: false, allowSubstitutes: false },
    credentialsDigest: "",
    createdAt: now,
    members: [],
    updatedAt: now,
  };
}

function spec(rec: CellRecord, cellDir: string, i: number): StartSpec {
  const home = `m${i}`;
  return {
    cell: rec.name,
    cellDir,
    identity: `agent:${home}`,
    home: path.join(cellDir, "home", home),
    homeName: home,
    role: "executor",
    command: ["/bin/sh", "-c", 'echo ready > "$HOME/ready"; exec sleep 600'],
    env: {},
    credentialsFile: path.join(cellDir, ".lazarus", "secrets", "credentials.json"),
    logFile: path.join(cellDir, ".lazarus", "logs", `${home}.log`),
    exitFile: path.join(cellDir, ".lazarus", "logs", `${home}.exit`),
    spawnId: `bench-${rec.name}-${i}`,
    resources: {},
    configDir: root,
  };
}

function pss(pid: number): number {
  try {
    return Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

// The supervisor and every descendant of it.
function tree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(e)]);
    } catch {
      // gone
    }
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i] as number) ?? []));
  return out;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const startMs: Record<string, number[]> = { process: [], sandbox: [] };
const memKb: Record<string, number[]> = { process: [], sandbox: [] };

for (let round = 0; round < ROUNDS; round++) {
  for (const kind of round % 2 ? (["sandbox", "process"] as const) : (["process", "sandbox"] as const)) {
    const rec = record(`b${round}${kind[0]}`, kind);
    const cellDir = path.join(root, "cells", rec.name);
    for (const d of ["project", "shared", "home", ".lazarus/logs", ".lazarus/secrets"])
      mkdirSync(path.join(cellDir, d), { recursive: true });
    const b = backends[kind] as Backend;
    await b.prepareCell(rec, cellDir);
    const started: { m: MemberRecord; pid: number }[] = [];
    for (let i = 0; i < MEMBERS; i++) {
      const s = spec(rec, cellDir, i);
      mkdirSync(s.home, { recursive: true });
      const t = process.hrtime.bigint();
      const r = await b.start(rec, s);
      while (!existsSync(path.join(s.home, "ready"))) await sleep(0.2);
      startMs[kind]?.push(Number(process.hrtime.bigint() - t) / 1e6);
      const m: MemberRecord = {
        identity: s.identity,
        home: s.homeName,
        role: "executor",
        env: {},
        status: "running",
        pid: r.pid,
        startTime: r.startTime,
        spawnId: s.spawnId,
        restarts: 0,
        joinedAt: "",
      };
      rec.members.push(m);
      started.push({ m, pid: r.pid });
    }
    await sleep(300);
    for (const { pid } of started) memKb[kind]?.push(tree(pid).reduce((sum, p) => sum + pss(p), 0));
    for (const { m } of started) await b.stop(rec, m, 2000);
    await b.releaseCell(rec);
  }
}
rmSync(root, { recursive: true, force: true });
// the bench's own cgroup root, emptied by releaseCell above
for (const h of readdirSync("/sys/fs/cgroup")) {
  try {
    rmdirSync(path.join("/sys/fs/cgroup", h, settings.sandbox.cgroupRoot));
  } catch {
    // not in this hierarchy
  }
}

const p = median(startMs.process as number[]);
const s = median(startMs.sandbox as number[]);
const pm = median(memKb.process as number[]);
const sm = median(memKb.sandbox as number[]);
console.log(
  `members ${MEMBERS} × rounds ${ROUNDS}, each backend's median; state dir ${process.env.STAGED === "1" ? "closed to others (staged)" : "traversable (not staged)"}`,
);
console.log(
  `start → command running: process ${p.toFixed(1)} ms, sandbox ${s.toFixed(1)} ms, +${(s - p).toFixed(1)} ms per member (ratio ${(s / p).toFixed(2)})`,
);
console.log(
  `idle memory (Pss of the member's processes): process ${(pm / 1024).toFixed(2)} MB, sandbox ${(sm / 1024).toFixed(2)} MB, +${((sm - pm) / 1024).toFixed(2)} MB per member`,
);
