// Benchmark: `lazarus apply --yes` creating N cells (one `sleep 600` member each, process backend)
// against `supervisorctl update` adding N programs (`command=sleep 600`) to a running supervisord,
// side by side in one run, rounds interleaved (Lazarus, supervisord, Lazarus, ...), so the machine's
// noise hits both alike. Prints each round, the medians and the median of the per-round ratios.
//
// Usage: npx tsx bench/vs-supervisord-apply.ts [N=1000] [rounds=3] [--parallelism P] [--strace] [--cli PATH]
//   --cli: another build's dist/cli.js (e.g. the commit before a change, for a before/after figure).
//   --strace: one more Lazarus apply under `strace -f -c`, printing its system calls per created cell
//             (Lazarus and its threads, plus each member's `sh` wrapper and command up to their sleep).
//
// Lazarus's time is the wall time of the real CLI in a fresh node process (start-up, load, plan,
// apply: every member spawned and recorded running when it returns). supervisord's is
// `supervisorctl -c CONF update` plus polling (XML-RPC, every 50 ms) until all N are RUNNING
// (startsecs=0; see bench/lib/supervisord.ts). Each Lazarus round starts from a fresh state dir, and
// its members are stopped afterwards by the process groups recorded in each cell.json, never by pattern.
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { cpuGroup } from "./lib/cpu.js";
import { median, stopMembers, stopMembersOnTeardown, writeSleepCells } from "./lib/members.js";
import { endOnTeardown } from "./lib/teardown.js";
import { startSupervisord, requireSupervisord, timeNoopUpdate, timeUpdate, writePrograms } from "./lib/supervisord.js";
// The benchmarks create more cells than the default ceiling (LAZARUS_MAX_CELLS, 1000): lift it.
process.env.LAZARUS_MAX_CELLS ??= "1000000";

const argv = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const positional = argv.filter(
  (a, i) => !a.startsWith("--") && !(i > 0 && (argv[i - 1] === "--parallelism" || argv[i - 1] === "--cli")),
);
const N = Number(positional[0] ?? 1000);
const ROUNDS = Number(positional[1] ?? 3);
const PARALLELISM = flag("--parallelism");
const STRACE = argv.includes("--strace");
const CLI = path.resolve(flag("--cli") ?? path.join(import.meta.dirname, "..", "dist", "cli.js"));

requireSupervisord("vs-supervisord-apply"); // before anything is made (cgroups, dirs)

// CPU of each side, where a cgroup can be made (root): Lazarus's apply with everything it starts
// (spawner, members' shells, log pumps), supervisord with its programs and each supervisorctl run.
// Unlike wall time on a shared machine, this hardly depends on what else runs.
const cpuLazarus = cpuGroup("lazarus");
const cpuSupervisord = cpuLazarus ? cpuGroup("supervisord") : undefined;

const root = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-vs-supervisord-"));
const config = path.join(root, "config");
writeSleepCells(config, N);
const applyArgs = (state: string): string[] => [
  CLI,
  "apply",
  "--yes",
  "--config",
  config,
  "--state-dir",
  state,
  ...(PARALLELISM ? ["--parallelism", PARALLELISM] : []),
];

function timed(file: string, args: string[]): Promise<number> {
  const t = process.hrtime.bigint();
  return new Promise((resolve, reject) =>
    execFile(file, args, { maxBuffer: 256 * 1024 * 1024 }, (err, _out, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(" ")}: ${stderr || err.message}`));
      else resolve(Number(process.hrtime.bigint() - t) / 1e6);
    }),
  );
}

async function lazarusRound(): Promise<{ ms: number; noopMs: number; cpuMs?: number }> {
  const state = path.join(root, `state-${process.hrtime.bigint()}`);
  const membersDone = stopMembersOnTeardown(state); // also when the bench is interrupted
  try {
    const cpu0 = cpuLazarus?.usageMs();
    const ms = await timed(
      ...(cpuLazarus ? cpuLazarus.wrap("node", applyArgs(state)) : (["node", applyArgs(state)] as [string, string[]])),
    );
    await sleep(cpuLazarus ? 1000 : 0); // the pumps it started finish starting
    const cpuMs = cpuLazarus && cpu0 !== undefined ? cpuLazarus.usageMs() - cpu0 : undefined;
    const noopMs = await timed("node", applyArgs(state)); // converged: nothing to do
    const stopped = await stopMembers(state);
    if (stopped !== N) throw new Error(`expected ${N} members recorded, found ${stopped}`);
    return { ms, noopMs, cpuMs };
  } finally {
    await stopMembers(state).catch(() => 0);
    membersDone();
    rmSync(state, { recursive: true, force: true });
  }
}

async function supervisordRound(): Promise<{ ms: number; noopMs: number; cpuMs?: number }> {
  const sup = await startSupervisord(cpuSupervisord);
  try {
    writePrograms(sup, N);
    const cpu0 = cpuSupervisord?.usageMs();
    const ms = await timeUpdate(sup, N);
    const cpuMs = cpuSupervisord && cpu0 !== undefined ? cpuSupervisord.usageMs() - cpu0 : undefined;
    const noopMs = await timeNoopUpdate(sup);
    return { ms, noopMs, cpuMs };
  } finally {
    await sup.stop();
  }
}

async function straceRound(): Promise<number | undefined> {
  const state = path.join(root, "state-strace");
  const out = path.join(root, "strace.txt");
  const membersDone = stopMembersOnTeardown(state);
  const child = spawn("strace", ["-f", "-c", "-o", out, "node", ...applyArgs(state)], { stdio: "ignore" });
  endOnTeardown(child);
  const done = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  child.once("error", () => undefined);
  // strace waits for every traced process, members included: stop them once apply has recorded them all.
  for (;;) {
    const head = (() => {
      try {
        return JSON.parse(readFileSync(path.join(state, "ledger.head.json"), "utf8")) as { seq: number };
      } catch {
        return undefined;
      }
    })();
    if (head && head.seq >= N) break;
    if (child.exitCode !== null) break;
    await sleep(200);
  }
  await sleep(500);
  await stopMembers(state);
  membersDone();
  await done;
  rmSync(state, { recursive: true, force: true });
  try {
    const total = readFileSync(out, "utf8")
      .split("\n")
      .find((l) => l.trim().endsWith(" total"));
    const calls = total ? Number(total.trim().split(/\s+/)[3]) : Number.NaN;
    return calls / N;
  } catch {
    return undefined; // strace is not installed
  }
}

const rows: {
  lazarus: number;
  supervisord: number;
  ratio: number;
  lazarusNoop: number;
  supervisordNoop: number;
  cpuLazarus?: number;
  cpuSupervisord?: number;
}[] = [];
try {
  console.log(
    `N=${N} rounds=${ROUNDS}${PARALLELISM ? ` parallelism=${PARALLELISM}` : ""}, node ${process.version}, ${os.cpus().length} cpus, load ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(" ")}`,
  );
  for (let r = 0; r < ROUNDS; r++) {
    const l = await lazarusRound();
    const s = await supervisordRound();
    rows.push({
      lazarus: l.ms,
      supervisord: s.ms,
      ratio: l.ms / s.ms,
      lazarusNoop: l.noopMs,
      supervisordNoop: s.noopMs,
      cpuLazarus: l.cpuMs,
      cpuSupervisord: s.cpuMs,
    });
    const cpu =
      l.cpuMs !== undefined && s.cpuMs !== undefined
        ? ` | CPU: lazarus ${(l.cpuMs / 1000).toFixed(2)} s, supervisord ${(s.cpuMs / 1000).toFixed(2)} s, ratio ${(l.cpuMs / s.cpuMs).toFixed(2)}`
        : "";
    console.log(
      `round ${r + 1}: lazarus apply ${(l.ms / 1000).toFixed(2)} s, supervisorctl update ${(s.ms / 1000).toFixed(2)} s, ratio ${(l.ms / s.ms).toFixed(2)} | no-op: lazarus ${(l.noopMs / 1000).toFixed(2)} s, supervisorctl ${(s.noopMs / 1000).toFixed(2)} s${cpu} | load ${(os.loadavg()[0] ?? 0).toFixed(1)}`,
    );
  }
  const out = {
    cells: N,
    rounds: ROUNDS,
    medianLazarusMs: Math.round(median(rows.map((x) => x.lazarus))),
    medianSupervisordMs: Math.round(median(rows.map((x) => x.supervisord))),
    medianRatio: Number(median(rows.map((x) => x.ratio)).toFixed(3)),
    medianNoopLazarusMs: Math.round(median(rows.map((x) => x.lazarusNoop))),
    medianNoopSupervisordMs: Math.round(median(rows.map((x) => x.supervisordNoop))),
    ...(cpuLazarus && cpuSupervisord
      ? {
          medianCpuLazarusMs: Math.round(median(rows.map((x) => x.cpuLazarus as number))),
          medianCpuSupervisordMs: Math.round(median(rows.map((x) => x.cpuSupervisord as number))),
          medianCpuRatio: Number(
            median(rows.map((x) => (x.cpuLazarus as number) / (x.cpuSupervisord as number))).toFixed(3),
          ),
        }
      : {}),
    ...(STRACE ? { syscallsPerCell: Math.round((await straceRound()) ?? Number.NaN) } : {}),
  };
  console.log(JSON.stringify(out, null, 2));
} finally {
  rmSync(root, { recursive: true, force: true });
  cpuLazarus?.remove();
  cpuSupervisord?.remove();
}
