// Benchmark: the daemon's no-op full resync over N converged cells (one `sleep 600` member each)
// against a no-op `supervisorctl update` with N programs, side by side in one run, turns taken.
//
// Usage: npx tsx bench/vs-supervisord-resync.ts [N=1000] [rounds=7]
//
// Lazarus: the cells are applied first (not timed), then `lazarus watch --resync 3s --metrics-port P`
// runs; each round waits for the next full resync to finish and takes its duration from the
// daemon's own histogram (lazarus_reconcile_duration_seconds{scope="full"}: sum and count before
// and after). supervisord: its own instance (bench/lib/supervisord.ts) with N programs RUNNING,
// then `supervisorctl -c CONF update` with nothing changed, timed right after each resync. Members
// are stopped by the process groups recorded in cell.json, supervisord by its pid.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { median, stopMembers, writeSleepCells } from "./lib/members.js";
import { startSupervisord, supervisordMissing, timeNoopUpdate, timeUpdate, writePrograms } from "./lib/supervisord.js";
// The benchmarks create more cells than the default ceiling (LAZARUS_MAX_CELLS, 1000): lift it.
process.env.LAZARUS_MAX_CELLS ??= "1000000";

const N = Number(process.argv[2] ?? 1000);
const ROUNDS = Number(process.argv[3] ?? 7);
const CLI = path.resolve(import.meta.dirname, "..", "dist", "cli.js");

const missing = supervisordMissing();
if (missing) {
  console.log(`vs-supervisord-resync: ${missing}`);
  process.exit(0);
}

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

// The full-resync histogram's sum (seconds) and count, from /metrics.
async function fullResyncs(port: number): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const value = (name: string): number => {
    const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes('scope="full"'));
    return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
  };
  return {
    sum: value("lazarus_reconcile_duration_seconds_sum"),
    count: value("lazarus_reconcile_duration_seconds_count"),
  };
}

const root = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-resync-"));
const config = path.join(root, "config");
const state = path.join(root, "state");
writeSleepCells(config, N);
const sup = await startSupervisord();
let daemon: ReturnType<typeof spawn> | undefined;
try {
  console.log(
    `N=${N} rounds=${ROUNDS}, node ${process.version}, ${os.cpus().length} cpus, load ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(" ")}`,
  );
  execFileSync("node", [CLI, "apply", "--yes", "--config", config, "--state-dir", state], {
    stdio: ["ignore", "ignore", "inherit"],
    maxBuffer: 256 * 1024 * 1024,
  });
  writePrograms(sup, N);
  await timeUpdate(sup, N);
  const port = await freePort();
  daemon = spawn(
    "node",
    [
      CLI,
      "watch",
      "--config",
      config,
      "--state-dir",
      state,
      "--resync",
      "3s",
      "--metrics-port",
      String(port),
      "--log-level",
      "warn",
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  for (let i = 0; i < 600; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    await sleep(100);
  }
  const rows: { lazarus: number; supervisord: number; ratio: number }[] = [];
  let last = await fullResyncs(port);
  for (let r = 0; r < ROUNDS; r++) {
    let now = last;
    while (now.count === last.count) {
      await sleep(50);
      now = await fullResyncs(port);
    }
    const lazarusMs = ((now.sum - last.sum) / (now.count - last.count)) * 1000;
    last = now;
    const supMs = await timeNoopUpdate(sup);
    rows.push({ lazarus: lazarusMs, supervisord: supMs, ratio: lazarusMs / supMs });
    console.log(
      `round ${r + 1}: lazarus no-op resync ${lazarusMs.toFixed(0)} ms, supervisorctl update (no-op) ${supMs.toFixed(0)} ms, ratio ${(lazarusMs / supMs).toFixed(3)}`,
    );
  }
  console.log(
    JSON.stringify(
      {
        cells: N,
        rounds: ROUNDS,
        medianLazarusMs: Math.round(median(rows.map((x) => x.lazarus))),
        medianSupervisordMs: Math.round(median(rows.map((x) => x.supervisord))),
        medianRatio: Number(median(rows.map((x) => x.ratio)).toFixed(3)),
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
