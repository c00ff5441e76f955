// Benchmark: with N other cells present, the time from writing one new cell file to its member
// process running under `lazarus watch`, and the daemon's resident memory.
// Usage: npx tsx bench/watch.ts [N=1000] [runs=7]
import { spawn, execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { stopMembers, stopMembersOnTeardown } from "./lib/members.js";
import { endOnTeardown } from "./lib/teardown.js";
// The benchmarks create more cells than the default ceiling (LAZARUS_MAX_CELLS, 1000): lift it.
process.env.LAZARUS_MAX_CELLS ??= "1000000";

const N = Number(process.argv[2] ?? 1000);
const RUNS = Number(process.argv[3] ?? 7);
const CLI = path.resolve(import.meta.dirname, "..", "dist", "cli.js");

const root = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-watch-"));
const config = path.join(root, "config");
const state = path.join(root, "state");
mkdirSync(path.join(config, "cells.d"), { recursive: true });

const doc = (name: string, member: string) =>
  [
    "apiVersion: lazarus/v1",
    "kind: Cell",
    "metadata:",
    `  name: ${name}`,
    "spec:",
    `  project: Org/repo#1`,
    "  owner: human:alexander",
    "  ttl: 24h",
    "  members:",
    member,
  ].join("\n");
// One agent member without a command per cell: it is invited, and its portfolio is resolved.
const observer = "    - {identity: agent:watcher, role: observer}";
mkdirSync(path.join(config, "portfolios"), { recursive: true });
writeFileSync(
  path.join(config, "portfolios", "default.yaml"),
  "apiVersion: lazarus/v1\nkind: Portfolio\nmetadata: {name: default}\nspec:\n  models: [{model: m1, provider: p}, {model: m2, provider: p}]\n",
);
for (let f = 0; f < Math.ceil(N / 100); f++) {
  const docs: string[] = [];
  for (let i = f * 100; i < Math.min(N, (f + 1) * 100); i++) docs.push(doc(`cell-${i}`, observer));
  writeFileSync(path.join(config, "cells.d", `team-${f}.yaml`), `${docs.join("\n---\n")}\n`);
}

// The N cells exist before the daemon starts, as on a host that has been running for a while.
// Interrupted (SIGINT, SIGTERM) or ending early, the bench still stops the members and the daemon.
const membersDone = stopMembersOnTeardown(state);
let t = Date.now();
execFileSync("node", [CLI, "apply", "--yes", "--config", config, "--state-dir", state], { stdio: "ignore" });
const setupMs = Date.now() - t;

const daemon = spawn("node", [CLI, "watch", "--config", config, "--state-dir", state, "--log-level", "warn"], {
  stdio: ["ignore", "ignore", "inherit"],
});
endOnTeardown(daemon);
t = Date.now();
// Ready when a probe cell written now is running.
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function runningSince(name: string): boolean {
  try {
    const rec = JSON.parse(readFileSync(path.join(state, "cells", name, ".lazarus", "cell.json"), "utf8")) as {
      members: { status: string }[];
    };
    return rec.members[0]?.status === "running";
  } catch {
    return false;
  }
}

async function measure(name: string): Promise<number> {
  const start = process.hrtime.bigint();
  writeFileSync(
    path.join(config, "cells.d", `${name}.yaml`),
    `${doc(name, '    - {identity: "agent:a", role: executor, command: ["sleep", "600"]}')}\n`,
  );
  while (!runningSince(name)) await sleep(2);
  return Number(process.hrtime.bigint() - start) / 1e6;
}

// Resident memory now, and at its peak (VmHWM: the start-up reconcile included), in MB.
function memMb(pid: number, field: "VmRSS" | "VmHWM"): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Math.round(Number(m?.[1]) / 1024);
}

await measure("warmup");
const startupMs = Date.now() - t;
const times: number[] = [];
for (let i = 0; i < RUNS; i++) {
  await sleep(300); // let the previous reconcile settle
  times.push(await measure(`probe-${i}`));
}
const sorted = [...times].sort((a, b) => a - b);
const rss = memMb(daemon.pid as number, "VmRSS");
const peak = memMb(daemon.pid as number, "VmHWM");
daemon.kill("SIGTERM");
await new Promise((r) => daemon.once("exit", r));
console.log(
  JSON.stringify(
    {
      otherCells: N,
      runs: RUNS,
      node: process.version,
      cpus: os.cpus().length,
      ms: {
        setupApply: setupMs,
        startupToFirstCell: startupMs,
        medianFileToRunning: Math.round(sorted[Math.floor(sorted.length / 2)] as number),
        all: times.map(Math.round),
      },
      daemonRssMb: rss,
      daemonPeakRssMb: peak,
    },
    null,
    2,
  ),
);
// Stop the probe members (their process groups, by the pids recorded for them), then remove everything.
await stopMembers(state);
membersDone();
rmSync(root, { recursive: true, force: true });
