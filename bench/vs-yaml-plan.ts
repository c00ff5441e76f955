// Figure A: cold `lazarus plan --json` on N generated cells against the parse floor, a fresh node
// process that only parses the same files with `yaml` (bench/lib/yaml-floor.mjs).
// Usage: npx tsx bench/vs-yaml-plan.ts [N=3000] [rounds=11]
// Rounds are interleaved (plan, floor, plan, floor …) so the noise of a shared machine hits both;
// printed: the median of each and the median of the per-round ratios, for wall time and (with
// /usr/bin/time) for CPU time.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { writeCells } from "./lib/cells.js";
// The benchmarks create more cells than the default ceiling (LAZARUS_MAX_CELLS, 1000): lift it.
process.env.LAZARUS_MAX_CELLS ??= "1000000";

const N = Number(process.argv[2] ?? 3000);
const ROUNDS = Number(process.argv[3] ?? 11);
// LAZARUS_CLI: another build to measure (e.g. an earlier commit built elsewhere), default this one.
const CLI = process.env.LAZARUS_CLI ?? path.resolve(import.meta.dirname, "..", "dist", "cli.js");
const FLOOR = path.resolve(import.meta.dirname, "lib", "yaml-floor.mjs");

const root = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-vs-yaml-"));
const config = path.join(root, "config");
const state = path.join(root, "state");
writeCells(config, N);

// Wall time of one fresh process, and its CPU time (user + system, all its threads) when
// /usr/bin/time is there: on a shared machine the CPU time scatters far less than the wall time.
const TIME = existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined;
function time(args: string[]): { wall: number; cpu?: number } {
  const t = process.hrtime.bigint();
  const r = TIME
    ? spawnSync(TIME, ["-f", "cpu %U %S", "node", ...args], { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" })
    : spawnSync("node", args, { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
  const wall = Number(process.hrtime.bigint() - t) / 1e6;
  const m = /cpu ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr ?? "");
  if (r.status !== 0 && !(r.status === 1 && args[0] === CLI))
    throw new Error(`node ${args.join(" ")} failed: ${r.stderr}`);
  return m ? { wall, cpu: (Number(m[1]) + Number(m[2])) * 1000 } : { wall };
}
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2
    ? (s[(s.length - 1) / 2] as number)
    : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};

const planArgs = [CLI, "plan", "--json", "--config", config, "--state-dir", state, "--now", "2030-01-01T00:00:00Z"];
const floorArgs = [FLOOR, config];
time(planArgs); // warm the page cache for both
time(floorArgs);
const plan: number[] = [];
const floor: number[] = [];
const ratios: number[] = [];
const cpuRatios: number[] = [];
const cpu = { plan: [] as number[], floor: [] as number[] };
for (let r = 0; r < ROUNDS; r++) {
  // Alternate which goes first, so neither always runs right after the other.
  let a: { wall: number; cpu?: number };
  let b: { wall: number; cpu?: number };
  if (r % 2 === 0) {
    a = time(planArgs);
    b = time(floorArgs);
  } else {
    b = time(floorArgs);
    a = time(planArgs);
  }
  plan.push(a.wall);
  floor.push(b.wall);
  ratios.push(a.wall / b.wall);
  if (a.cpu !== undefined && b.cpu !== undefined) {
    cpu.plan.push(a.cpu);
    cpu.floor.push(b.cpu);
    cpuRatios.push(a.cpu / b.cpu);
  }
}
const two = (x: number): number => Number(x.toFixed(2));
console.log(
  JSON.stringify(
    {
      cells: N,
      rounds: ROUNDS,
      node: process.version,
      cpus: os.cpus().length,
      loadavg: os.loadavg().map(two),
      wall: {
        planJsonMs: Math.round(median(plan)),
        yamlFloorMs: Math.round(median(floor)),
        medianRatio: two(median(ratios)),
        ratios: ratios.map(two),
      },
      ...(cpuRatios.length
        ? {
            cpu: {
              planJsonMs: Math.round(median(cpu.plan)),
              yamlFloorMs: Math.round(median(cpu.floor)),
              medianRatio: two(median(cpuRatios)),
              ratios: cpuRatios.map(two),
            },
          }
        : {}),
    },
    null,
    2,
  ),
);
rmSync(root, { recursive: true, force: true });
