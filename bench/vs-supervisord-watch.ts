// Benchmark: from writing a new cell file to its member running under `lazarus watch` (N other
// cells present), against supervisord's way to the same end — write a new program file, run
// `supervisorctl update`, until the program is RUNNING with a pid — with P programs running. Side
// by side in one run, turns taken; the ratio is the median of the per-round ratios.
//
// Usage: npx tsx bench/vs-supervisord-watch.ts [N=10000] [P=1000] [rounds=7] [--prof DIR]
// (--prof DIR: the daemon writes a V8 CPU profile into DIR when it stops; rounds are marked in it
// by the time printed with each round, for bench/lib/cpuprof-summary.mjs --after.)
//
// Lazarus: N observer-only cells (no process each, as in bench/watch.ts) are applied first (not
// timed), then the daemon starts with its default debounce (200 ms: it waits that long after the
// last file event, so an editor's several writes make one reconcile); each round writes one new
// cell with a `sleep 600` member and polls its record until the member is running. supervisord:
// its own instance (bench/lib/supervisord.ts) with P `sleep 3600` programs RUNNING (an hour: on a
// loaded host the set-up and the daemon's start-up can outlast 10 minutes, and a round waits for
// all P programs to run); each round
// writes one more program file and times `supervisorctl update` plus the wait until it RUNS.
// Processes are stopped by pid or process group only: members by the groups recorded in
// cell.json, supervisord by its pid.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { writeCells } from "./lib/cells.js";
import { median, stopMembers, stopMembersOnTeardown } from "./lib/members.js";
import { endOnTeardown } from "./lib/teardown.js";
import { startSupervisord, requireSupervisord, timeUpdate, writePrograms } from "./lib/supervisord.js";
// The benchmarks create more cells than the default ceiling (LAZARUS_MAX_CELLS, 1000): lift it.
process.env.LAZARUS_MAX_CELLS ??= "1000000";

const profAt = process.argv.indexOf("--prof");
const PROF_DIR = profAt > 0 ? path.resolve(process.argv[profAt + 1] ?? "prof") : undefined;
const args = process.argv.slice(2).filter((_, i, all) => all[i] !== "--prof" && all[i - 1] !== "--prof");
const N = Number(args[0] ?? 10_000);
const P = Number(args[1] ?? 1000);
const ROUNDS = Number(args[2] ?? 7);
const DEBOUNCE_MS = 200;
const CLI = path.resolve(import.meta.dirname, "..", "dist", "cli.js");

requireSupervisord("vs-supervisord-watch");

const doc = (name: string, member: string): string =>
  [
    "apiVersion: lazarus/v1",
    "kind: Cell",
    "metadata:",
    `  name: ${name}`,
    "spec:",
    "  project: Org/repo#1",
    "  owner: human:alexander",
    "  ttl: 24h",
    "  members:",
    member,
    "",
  ].join("\n");
const observer = "    - {identity: agent:watcher, role: observer}";
const sleeper = '    - {identity: "agent:a", role: executor, command: ["sleep", "600"]}';
const PROGRAM = "sleep 3600";

function running(state: string, name: string): boolean {
  try {
    const rec = JSON.parse(readFileSync(path.join(state, "cells", name, ".lazarus", "cell.json"), "utf8")) as {
      members: { status: string; pid?: number }[];
    };
    return rec.members[0]?.status === "running" && (rec.members[0].pid ?? 0) > 0;
  } catch {
    return false;
  }
}

const root = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-vswatch-"));
const config = path.join(root, "config");
const state = path.join(root, "state");
writeCells(config, N, 100, (i) => doc(`cell-${i}`, observer));
mkdirSync(path.join(config, "portfolios"), { recursive: true });
stopMembersOnTeardown(state); // interrupted (SIGINT, SIGTERM): members, daemon and supervisord end too
const sup = await startSupervisord();
let daemon: ChildProcess | undefined;
try {
  console.log(
    `N=${N} other cells, P=${P} programs, rounds=${ROUNDS}, node ${process.version}, ${os.cpus().length} cpus, load ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(" ")}`,
  );
  let t = Date.now();
  execFileSync("node", [CLI, "apply", "--yes", "--config", config, "--state-dir", state], {
    stdio: ["ignore", "ignore", "inherit"],
    maxBuffer: 256 * 1024 * 1024,
  });
  console.log(`setup: ${N} cells applied in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  writePrograms(sup, P, PROGRAM);
  await timeUpdate(sup, P);
  daemon = spawn(
    "node",
    [
      ...(PROF_DIR ? ["--cpu-prof", "--cpu-prof-dir", PROF_DIR] : []),
      CLI,
      "watch",
      "--config",
      config,
      "--state-dir",
      state,
      "--debounce",
      `${DEBOUNCE_MS}ms`,
      "--log-level",
      "warn",
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  endOnTeardown(daemon);
  t = Date.now();
  const lazarusRound = async (name: string): Promise<number> => {
    const start = process.hrtime.bigint();
    writeFileSync(path.join(config, "cells.d", `${name}.yaml`), doc(name, sleeper));
    while (!running(state, name)) await sleep(2);
    return Number(process.hrtime.bigint() - start) / 1e6;
  };
  await lazarusRound("warmup"); // also: the daemon is up and its start-up reconcile is done
  console.log(`daemon start-up to the first new cell running: ${((Date.now() - t) / 1000).toFixed(1)} s`);
  const rows: { lazarus: number; supervisord: number; ratio: number }[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    await sleep(500); // let the previous reconcile settle
    const lazarusMs = await lazarusRound(`probe-${r}`);
    writeFileSync(
      path.join(sup.programsDir, `new${r}.conf`),
      `[program:new${r}]\ncommand=${PROGRAM}\nautostart=true\nstartsecs=0\n`,
    );
    const supMs = await timeUpdate(sup, P + r + 1, 2);
    rows.push({ lazarus: lazarusMs, supervisord: supMs, ratio: lazarusMs / supMs });
    console.log(
      `round ${r + 1}: lazarus file → running ${lazarusMs.toFixed(0)} ms (debounce ${DEBOUNCE_MS} ms of it), supervisord file + update → running ${supMs.toFixed(0)} ms, ratio ${(lazarusMs / supMs).toFixed(3)}`,
    );
  }
  const rss = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${daemon.pid}/status`, "utf8"))?.[1]) / 1024;
  const medLazarus = median(rows.map((x) => x.lazarus));
  console.log(
    JSON.stringify(
      {
        otherCells: N,
        programs: P,
        rounds: ROUNDS,
        debounceMs: DEBOUNCE_MS,
        medianLazarusMs: Math.round(medLazarus),
        medianLazarusBeyondDebounceMs: Math.round(medLazarus - DEBOUNCE_MS),
        medianSupervisordMs: Math.round(median(rows.map((x) => x.supervisord))),
        medianRatio: Number(median(rows.map((x) => x.ratio)).toFixed(3)),
        daemonRssMb: Math.round(rss),
      },
      null,
      2,
    ),
  );
} finally {
  if (daemon && daemon.exitCode === null) {
    daemon.kill("SIGTERM");
    await new Promise((r) => daemon?.once("exit", r));
  }
  await stopMembers(state).catch(() => 0);
  await sup.stop();
  rmSync(root, { recursive: true, force: true });
}
