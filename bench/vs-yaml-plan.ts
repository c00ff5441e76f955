// Figure A: cold `lazarus plan --json` on N generated cells against the parse floor, a fresh node
// process that only parses the same files with `yaml` (bench/lib/yaml-floor.mjs).
// Usage: npx tsx bench/vs-yaml-plan.ts [N=3000] [rounds=11]
// Rounds are interleaved (plan, floor, plan, floor …) so the noise of a shared machine hits both;
// printed: the median of each and the median of the per-round ratios.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { writeCells } from "./lib/cells.js";

const N = Number(process.argv[2] ?? 3000);
const ROUNDS = Number(process.argv[3] ?? 11);
// LAZARUS_CLI: another build to measure (e.g. an earlier commit built elsewhere), default this one.
const CLI = process.env.LAZARUS_CLI ?? path.resolve(import.meta.dirname, "..", "dist", "cli.js");
const FLOOR = path.resolve(import.meta.dirname, "lib", "yaml-floor.mjs");

const root = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-vs-yaml-"));
const config = path.join(root, "config");
const state = path.join(root, "state");
writeCells(config, N);

function time(args: string[]): number {
  const t = process.hrtime.bigint();
  execFileSync("node", args, { stdio: ["ignore", "ignore", "inherit"], maxBuffer: 256 * 1024 * 1024 });
  return Number(process.hrtime.bigint() - t) / 1e6;
}
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? (s[(s.length - 1) / 2] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};

const planArgs = [CLI, "plan", "--json", "--config", config, "--state-dir", state, "--now", "2030-01-01T00:00:00Z"];
const floorArgs = [FLOOR, config];
time(planArgs); // warm the page cache for both
time(floorArgs);
const plan: number[] = [];
const floor: number[] = [];
const ratios: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  // Alternate which goes first, so neither always runs right after the other.
  const [a, b] = r % 2 === 0 ? [time(planArgs), time(floorArgs)] : (([f, p]) => [p, f])([time(floorArgs), time(planArgs)]);
  plan.push(a as number);
  floor.push(b as number);
  ratios.push((a as number) / (b as number));
}
console.log(
  JSON.stringify(
    {
      cells: N,
      rounds: ROUNDS,
      node: process.version,
      cpus: os.cpus().length,
      ms: { planJson: Math.round(median(plan)), yamlFloor: Math.round(median(floor)) },
      medianRatio: Number(median(ratios).toFixed(2)),
      ratios: ratios.map((x) => Number(x.toFixed(2))),
    },
    null,
    2,
  ),
);
rmSync(root, { recursive: true, force: true });
