// Benchmark: the daemon's no-op full resync over N converged cells (one `sleep 3600` member each)
// against a no-op `supervisorctl update` with N programs, side by side in one run, turns taken,
// for each layout of cells.d/ (cells per file) and each build.
//
// Usage: npx tsx bench/vs-supervisord-resync.ts [N=1000] [rounds=7] [--layouts 1,100] [--cli NAME=PATH ...]
//   (bench/lib/layout.ts: the README's cell, one member with a command; by default both layouts
//   and this tree's build)
//
// For each layout the cells are applied once (not timed, by the first build) into a state dir of
// their own. Each round, for each layout and build in turn: `lazarus watch --resync 2s
// --metrics-port P` starts on that state dir, its start-up pass (which observes every cell) is
// left out, and the next two full resyncs are taken from the daemon's own histogram
// (lazarus_reconcile_duration_seconds{scope="full"}: sum and count); the daemon is stopped
// (members keep running), and a no-op `supervisorctl -c CONF update` against a private supervisord
// with N programs RUNNING is timed right after. The ratio is taken per round. Members are
// stopped at the end by the process groups recorded in cell.json, supervisord by its pid; a bench
// interrupted (SIGINT, SIGTERM) or exiting early ends its daemon, supervisord and the members too
// (bench/lib/teardown.ts).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { layoutArgs, layoutName, writeLayout } from "./lib/layout.js";
import { median, stopMembers, stopMembersOnTeardown } from "./lib/members.js";
import { endOnTeardown } from "./lib/teardown.js";
import { startSupervisord, requireSupervisord, timeNoopUpdate, timeUpdate, writePrograms } from "./lib/supervisord.js";
// The benchmarks create more cells than the default ceiling (LAZARUS_MAX_CELLS, 1000): lift it.
process.env.LAZARUS_MAX_CELLS ??= "1000000";

const args = layoutArgs();
const N = Number(args.positional[0] ?? 1000);
const ROUNDS = Number(args.positional[1] ?? 7);

requireSupervisord("vs-supervisord-resync");

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

// A metric's value for scope="full" (or outcome=...), from /metrics.
async function metrics(port: number): Promise<{ sum: number; count: number; observed: number; skipped: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const value = (name: string, label: string): number => {
    const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(label));
    return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
  };
  return {
    sum: value("lazarus_reconcile_duration_seconds_sum", 'scope="full"'),
    count: value("lazarus_reconcile_duration_seconds_count", 'scope="full"'),
    observed: value("lazarus_resync_cells_total", 'outcome="observed"'),
    skipped: value("lazarus_resync_cells_total", 'outcome="skipped"'),
  };
}

// Start a daemon on the layout's dirs, skip its start-up pass, average its next two full
// resyncs (ms), stop it.
async function measure(cli: string, config: string, state: string): Promise<{ ms: number; observed: number }> {
  const port = await freePort();
  const argv = ["watch", "--config", config, "--state-dir", state, "--resync", "2s"];
  const daemon: ChildProcess = spawn("node", [cli, ...argv, "--metrics-port", String(port), "--log-level", "warn"], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  endOnTeardown(daemon);
  try {
    let first = { sum: 0, count: 0, observed: 0, skipped: 0 };
    for (let i = 0; i < 1200 && first.count < 1; i++) {
      first = await metrics(port).catch(() => first);
      await sleep(100);
    }
    let last = first;
    while (last.count < first.count + 2) {
      await sleep(50);
      last = await metrics(port);
    }
    const ms = ((last.sum - first.sum) / (last.count - first.count)) * 1000;
    return { ms, observed: (last.observed - first.observed) / (last.count - first.count) };
  } finally {
    if (daemon.exitCode === null) {
      daemon.kill("SIGTERM");
      await new Promise((r) => daemon.once("exit", r));
    }
  }
}

const root = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-resync-"));
const dirs = new Map(
  args.layouts.map((perFile) => [
    perFile,
    { config: path.join(root, `config-${perFile}`), state: path.join(root, `state-${perFile}`) },
  ]),
);
for (const d of dirs.values()) stopMembersOnTeardown(d.state);
const sup = await startSupervisord();
try {
  const load = (): string =>
    os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(" ");
  console.log(`N=${N} rounds=${ROUNDS}, node ${process.version}, ${os.cpus().length} cpus, load ${load()}`);
  for (const [perFile, d] of dirs) {
    writeLayout(d.config, N, perFile);
    execFileSync(
      "node",
      [args.builds[0]?.cli as string, "apply", "--yes", "--config", d.config, "--state-dir", d.state],
      {
        stdio: ["ignore", "ignore", "inherit"],
        maxBuffer: 256 * 1024 * 1024,
      },
    );
  }
  // An hour, not ten minutes: on a loaded host the set-up alone can outlast a `sleep 600`.
  writePrograms(sup, N, "sleep 3600");
  await timeUpdate(sup, N);
  const series = args.layouts.flatMap((layout) =>
    args.builds.map((b) => ({ layout, build: b, rows: [] as number[][] })),
  );
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < series.length; k++) {
      const s = series[(k + r) % series.length] as (typeof series)[number];
      const d = dirs.get(s.layout) as { config: string; state: string };
      const { ms, observed } = await measure(s.build.cli, d.config, d.state);
      const supMs = await timeNoopUpdate(sup);
      s.rows.push([ms, supMs, ms / supMs]);
      console.log(
        `round ${r + 1}, ${layoutName(s.layout)}, ${s.build.name}: no-op resync ${ms.toFixed(0)} ms (${observed} cells observed per pass), supervisorctl update (no-op) ${supMs.toFixed(0)} ms, ratio ${(ms / supMs).toFixed(3)}, load ${load()}`,
      );
    }
  }
  for (const s of series) {
    const ratios = s.rows.map((x) => x[2] as number);
    console.log(
      JSON.stringify({
        layout: layoutName(s.layout),
        build: s.build.name,
        cells: N,
        rounds: ROUNDS,
        medianLazarusMs: Math.round(median(s.rows.map((x) => x[0] as number))),
        medianSupervisordMs: Math.round(median(s.rows.map((x) => x[1] as number))),
        medianRatio: Number(median(ratios).toFixed(3)),
        spread: [Number(Math.min(...ratios).toFixed(3)), Number(Math.max(...ratios).toFixed(3))],
      }),
    );
  }
} finally {
  for (const d of dirs.values()) await stopMembers(d.state).catch(() => 0);
  await sup.stop();
  rmSync(root, { recursive: true, force: true });
}
