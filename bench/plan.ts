// Benchmark: how long `lazarus plan` and `lazarus apply` take on N generated cells.
// Usage: npx tsx bench/plan.ts [N=1000] [runs=7]
// Prints the median wall time of the real CLI (a fresh node process each run, as users run it).
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

const N = Number(process.argv[2] ?? 1000);
const RUNS = Number(process.argv[3] ?? 7);
const CLI = path.resolve(import.meta.dirname, "..", "dist", "cli.js");

function cellDoc(i: number): string {
  return [
    "apiVersion: lazarus/v1",
    "kind: Cell",
    "metadata:",
    `  name: cell-${i}`,
    `  labels: {team: t${i % 10}}`,
    "spec:",
    `  project: Org/repo#${i}`,
    "  owner: human:alexander",
    "  ttl: 8h",
    "  members:",
    "    - identity: human:alexander",
    "      role: director",
    "    - identity: bot:reviewer",
    "      role: observer",
  ].join("\n");
}

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
mkdirSync(path.join(config, "cells.d"), { recursive: true });
// 100 cells per file, as a fleet's config repo might group them.
for (let f = 0; f < Math.ceil(N / 100); f++) {
  const docs: string[] = [];
  for (let i = f * 100; i < Math.min(N, (f + 1) * 100); i++) docs.push(cellDoc(i));
  writeFileSync(path.join(config, "cells.d", `team-${f}.yaml`), `${docs.join("\n---\n")}\n`);
}
const common = ["--config", config, "--state-dir", state];
const now = ["--now", "2030-01-01T00:00:00Z"];

const planEmpty = median(Array.from({ length: RUNS }, () => time(["plan", ...common, ...now])));
const applyAll = time(["apply", "--yes", ...common, ...now]);
const planConverged = median(Array.from({ length: RUNS }, () => time(["plan", "--detailed-exitcode", ...common, ...now])));
const version = time(["--version"]);

console.log(JSON.stringify({ cells: N, runs: RUNS, node: process.version, cpus: os.cpus().length, cpu: os.cpus()[0]?.model, ms: { startup: Math.round(version), planAllCreate: Math.round(planEmpty), applyCreateAll: Math.round(applyAll), planConvergedNoChanges: Math.round(planConverged) } }, null, 2));
rmSync(root, { recursive: true, force: true });
