// Figure A: cold `lazarus plan --json` on N generated cells against the parse floor, a fresh node
// process that only parses the same files with `yaml` (bench/lib/yaml-floor.mjs), for each layout
// of cells.d/ (cells per file) and each build, in one run.
// Usage: npx tsx bench/vs-yaml-plan.ts [N=3000] [rounds=11] [--layouts 1,100] [--cli NAME=PATH ...]
//   (bench/lib/layout.ts; LAZARUS_CLI still names the one build when no --cli is given)
// Each round measures every layout and build, each plan right beside its own floor run (which goes
// first alternates), so the noise of a shared machine hits both; printed per layout and build: the
// median of each and the median of the per-round ratios, for wall time and (with /usr/bin/time)
// for CPU time.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { layoutArgs, layoutName, writeLayout } from "./lib/layout.js";
import { median } from "./lib/members.js";
// The benchmarks create more cells than the default ceiling (LAZARUS_MAX_CELLS, 1000): lift it.
process.env.LAZARUS_MAX_CELLS ??= "1000000";

const args = layoutArgs();
const N = Number(args.positional[0] ?? 3000);
const ROUNDS = Number(args.positional[1] ?? 11);
if (process.env.LAZARUS_CLI && args.builds.length === 1 && args.builds[0]?.name === "this")
  args.builds[0] = { name: "LAZARUS_CLI", cli: process.env.LAZARUS_CLI };
const FLOOR = path.resolve(import.meta.dirname, "lib", "yaml-floor.mjs");

const root = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-vs-yaml-"));
const configs = new Map(args.layouts.map((perFile) => [perFile, path.join(root, `config-${perFile}`)]));
for (const [perFile, config] of configs) writeLayout(config, N, perFile);

interface Timing {
  wall: number;
  cpu?: number;
}
// Wall time of one fresh process, and its CPU time (user + system, all its threads) when
// /usr/bin/time is there: on a shared machine the CPU time scatters far less than the wall time.
const TIME = existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined;
function time(argv: string[], planning: boolean): Timing {
  const t = process.hrtime.bigint();
  const r = TIME
    ? spawnSync(TIME, ["-f", "cpu %U %S", "node", ...argv], { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" })
    : spawnSync("node", argv, { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
  const wall = Number(process.hrtime.bigint() - t) / 1e6;
  const m = /cpu ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr ?? "");
  // plan exits 1 when its plan is not empty (every cell to create here).
  if (r.status !== 0 && !(r.status === 1 && planning)) throw new Error(`node ${argv.join(" ")} failed: ${r.stderr}`);
  return m ? { wall, cpu: (Number(m[1]) + Number(m[2])) * 1000 } : { wall };
}

const planArgs = (cli: string, config: string): string[] => [
  cli,
  "plan",
  "--json",
  "--config",
  config,
  "--state-dir",
  path.join(root, "state"),
  "--now",
  "2030-01-01T00:00:00Z",
];

interface Series {
  layout: number;
  build: string;
  plan: Timing[];
  floor: Timing[];
}
const series: Series[] = [];
for (const layout of args.layouts)
  for (const b of args.builds) series.push({ layout, build: b.name, plan: [], floor: [] });
const cliOf = new Map(args.builds.map((b) => [b.name, b.cli]));

for (const s of series) {
  // warm the page cache for both
  time(planArgs(cliOf.get(s.build) as string, configs.get(s.layout) as string), true);
  time([FLOOR, configs.get(s.layout) as string], false);
}
for (let r = 0; r < ROUNDS; r++) {
  // Rotate the order of the series, and alternate which of plan and floor goes first.
  for (let k = 0; k < series.length; k++) {
    const s = series[(k + r) % series.length] as Series;
    const config = configs.get(s.layout) as string;
    const plan = (): number => s.plan.push(time(planArgs(cliOf.get(s.build) as string, config), true));
    const floor = (): number => s.floor.push(time([FLOOR, config], false));
    if (r % 2 === 0) {
      plan();
      floor();
    } else {
      floor();
      plan();
    }
  }
  process.stderr.write(`round ${r + 1}/${ROUNDS} done, load ${os.loadavg()[0]?.toFixed(1)}\n`);
}

const two = (x: number): number => Number(x.toFixed(2));
function summary(plan: (number | undefined)[], floor: (number | undefined)[]): object | undefined {
  if (plan.some((x) => x === undefined) || floor.some((x) => x === undefined)) return undefined;
  const ratios = plan.map((p, i) => (p as number) / (floor[i] as number));
  return {
    planJsonMs: Math.round(median(plan as number[])),
    yamlFloorMs: Math.round(median(floor as number[])),
    medianRatio: two(median(ratios)),
    spread: [two(Math.min(...ratios)), two(Math.max(...ratios))],
    ratios: ratios.map(two),
  };
}
// One line per layout and build, so a run reads as a table.
console.log(JSON.stringify({ cells: N, rounds: ROUNDS, node: process.version, cpus: os.cpus().length }));
console.log(JSON.stringify({ loadavg: os.loadavg().map(two) }));
for (const s of series)
  console.log(
    JSON.stringify({
      layout: layoutName(s.layout),
      build: s.build,
      files: Math.ceil(N / s.layout),
      wall: summary(
        s.plan.map((t) => t.wall),
        s.floor.map((t) => t.wall),
      ),
      cpu: summary(
        s.plan.map((t) => t.cpu),
        s.floor.map((t) => t.cpu),
      ),
    }),
  );
rmSync(root, { recursive: true, force: true });
