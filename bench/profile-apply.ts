// One `lazarus apply --yes` creating N cells (one `sleep 600` member each, as vs-supervisord-apply.ts),
// with no peer: for looking at where an apply's time goes, not for a figure. Prints the wall, user
// and system time of the apply's process tree (/usr/bin/time), then stops the members it started
// by the process groups recorded in each cell.json.
//
// Usage: npx tsx bench/profile-apply.ts [N=1000] [node options...]
//   npx tsx bench/profile-apply.ts 1000 --cpu-prof --cpu-prof-dir=prof    # then bench/lib/cpuprof-summary.mjs
//   WRAP=/path/to/script npx tsx bench/profile-apply.ts 300               # runs `script node dist/cli.js apply …`
//     (a script that execs `perf record -a -g -- "$@"` or `strace -f -c -- "$@"`, say)
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { stopMembers, writeSleepCells } from "./lib/members.js";
// The benchmarks create more cells than the default ceiling (LAZARUS_MAX_CELLS, 1000): lift it.
process.env.LAZARUS_MAX_CELLS ??= "1000000";

const N = Number(process.argv[2] ?? 1000);
const nodeOptions = process.argv.slice(3);
const CLI = path.resolve(import.meta.dirname, "..", "dist", "cli.js");
const root = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-profile-"));
writeSleepCells(path.join(root, "config"), N);
const state = path.join(root, "state");
const wrap = process.env.WRAP;
const t = Date.now();
try {
  const command = wrap ?? "/usr/bin/time";
  const args = [
    ...(wrap ? [] : ["-f", "apply tree: %e s wall, %U s user, %S s system"]),
    "node",
    ...nodeOptions,
    CLI,
    "apply",
    "--yes",
    "--config",
    path.join(root, "config"),
    "--state-dir",
    state,
  ];
  execFileSync(command, args, { stdio: ["ignore", "ignore", "inherit"] });
  console.log(`apply of ${N} cells: ${Date.now() - t} ms`);
} finally {
  console.log(`members stopped: ${await stopMembers(state)}`);
  rmSync(root, { recursive: true, force: true });
}
