// Benchmark: how long `lazarus plan` and `lazarus apply` take on N generated cells.
// Usage: npx tsx bench/plan.ts [N=1000] [runs=7]
// Prints the median wall time of the real CLI (a fresh node process each run, as users run it).
import { execFileSync } from "node:child_process";
import { writeCells } from "./lib/cells.js";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
// The benchmarks create more cells than the default ceiling (LAZARUS_MAX_CELLS, 1000): lift it.
process.env.LAZARUS_MAX_CELLS ??= "1000000";

const N = Number(process.argv[2] ?? 1000);
const RUNS = Number(process.argv[3] ?? 7);
const CLI = path.resolve(import.meta.dirname, "..", "dist", "cli.js");

function time(args: string[]): number {
  const t = process.hrtime.bigint();
  execFileSync("node", [CLI, ...args], { stdio: ["ignore", "ignore", "inherit"] });
  return Number(process.hrtime.bigint() - t) / 1e6;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

const root = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-"));
const config = path.join(root, "config");
const state = path.join(root, "state");
writeCells(config, N);
const common = ["--config", config, "--state-dir", state];
const now = ["--now", "2030-01-01T00:00:00Z"];

const planEmpty = median(Array.from({ length: RUNS }, () => time(["plan", ...common, ...now])));
const applyAll = time(["apply", "--yes", ...common, ...now]);
const planConverged = median(
  Array.from({ length: RUNS }, () => time(["plan", "--detailed-exitcode", ...common, ...now])),
);
const version = time(["--version"]);

console.log(
  JSON.stringify(
    {
      cells: N,
      runs: RUNS,
      node: process.version,
      cpus: os.cpus().length,
      cpu: os.cpus()[0]?.model,
      ms: {
        startup: Math.round(version),
        planAllCreate: Math.round(planEmpty),
        applyCreateAll: Math.round(applyAll),
        planConvergedNoChanges: Math.round(planConverged),
      },
    },
    null,
    2,
  ),
);
rmSync(root, { recursive: true, force: true });
