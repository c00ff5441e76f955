// The log pump's memory per member: N cells with one `sleep 600` member each, started by `apply`
// (or by `watch` with --watch), then each member's pump (the process reading the member's output
// pipe) measured from /proc: VmRSS, and from smaps_rollup the PSS (shared pages divided among the
// processes sharing them) and the USS (private pages: what the pump alone costs). Also the
// spawner's own memory while the daemon runs (one per Lazarus process, not per member).
//
// Usage: npx tsx bench/pump-memory.ts [N=50] [--watch] [--cli PATH]
//   LAZARUS_SPAWNER=node npx tsx bench/pump-memory.ts 50     # the fallback: node's spawn, node pump
// Members are stopped afterwards by their recorded process groups; the daemon by its pid.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { stopMembers, stopMembersOnTeardown, writeSleepCells } from "./lib/members.js";
import { endOnTeardown } from "./lib/teardown.js";

const argv = process.argv.slice(2);
const N = Number(argv.find((a) => /^\d+$/.test(a)) ?? 50);
const WATCH = argv.includes("--watch");
const cliAt = argv.indexOf("--cli");
const CLI = path.resolve(
  cliAt >= 0 ? (argv[cliAt + 1] as string) : path.join(import.meta.dirname, "..", "dist", "cli.js"),
);

const kb = (text: string, field: string): number =>
  Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? Number.NaN);
const fd = (pid: number, n: number): string | undefined => {
  try {
    return readlinkSync(`/proc/${pid}/fd/${n}`);
  } catch {
    return undefined;
  }
};
const pids = (): number[] =>
  readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .map(Number);
const pgid = (pid: number): number | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
  } catch {
    return undefined;
  }
};

interface Mem {
  rss: number;
  pss: number;
  uss: number;
}
function memory(pid: number): Mem {
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  return {
    rss: kb(readFileSync(`/proc/${pid}/status`, "utf8"), "VmRSS"),
    pss: kb(rollup, "Pss"),
    uss: kb(rollup, "Private_Clean") + kb(rollup, "Private_Dirty"),
  };
}

// Each member's pump: the reader of a pipe some process of the member's group writes to.
function pumps(state: string): number[] {
  const leaders = new Set<number>();
  for (const c of readdirSync(path.join(state, "cells"))) {
    try {
      const rec = JSON.parse(readFileSync(path.join(state, "cells", c, ".lazarus", "cell.json"), "utf8")) as {
        members: { pid?: number }[];
      };
      for (const m of rec.members) if (m.pid) leaders.add(m.pid);
    } catch {
      // not a cell
    }
  }
  const all = pids();
  const pipes = new Set(
    all
      .filter((p) => leaders.has(pgid(p) ?? -1))
      .map((p) => fd(p, 1))
      .filter((t) => t?.startsWith("pipe:")),
  );
  return all.filter((p) => !leaders.has(pgid(p) ?? -1) && pipes.has(fd(p, 0)));
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

const dir = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-pumpmem-"));
const config = path.join(dir, "config");
const state = path.join(dir, "state");
writeSleepCells(config, N);
process.env.LAZARUS_MAX_CELLS ??= "1000000";
let daemon: ReturnType<typeof spawn> | undefined;
stopMembersOnTeardown(state); // interrupted (SIGINT, SIGTERM), the members and the daemon are stopped too
try {
  if (WATCH) {
    daemon = spawn(process.execPath, [CLI, "watch", "--config", config, "--state-dir", state, "--log-level", "warn"], {
      stdio: "ignore",
    });
    endOnTeardown(daemon);
  } else {
    execFileSync(process.execPath, [CLI, "apply", "--yes", "--config", config, "--state-dir", state], {
      stdio: "ignore",
    });
  }
  let found: number[] = [];
  for (let i = 0; i < 600 && found.length < N; i++) {
    await sleep(500);
    try {
      found = pumps(state);
    } catch {
      // the state dir is not there yet
    }
  }
  await sleep(1000);
  found = pumps(state);
  const mems = found.map(memory);
  const kind = found[0]
    ? readFileSync(`/proc/${found[0]}/cmdline`, "utf8").split("\0").slice(0, 2).join(" ").slice(0, 60)
    : "none";
  const isSpawner = (p: number): boolean => {
    try {
      return (
        readFileSync(`/proc/${p}/cmdline`, "utf8").startsWith("lazarus spawner") &&
        readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1]?.split(" ")[1] === String(daemon?.pid)
      );
    } catch {
      return false; // gone meanwhile
    }
  };
  const spawner = daemon ? pids().find(isSpawner) : undefined;
  const f = (k: keyof Mem) =>
    `median ${(median(mems.map((m) => m[k])) / 1024).toFixed(2)} MB, mean ${(mean(mems.map((m) => m[k])) / 1024).toFixed(2)} MB`;
  console.log(
    `N=${N} ${WATCH ? "watch" : "apply"} ${CLI} LAZARUS_SPAWNER=${process.env.LAZARUS_SPAWNER ?? ""} load ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`,
  );
  console.log(`pumps found: ${found.length} (${kind})`);
  console.log(`per pump: RSS ${f("rss")}; PSS ${f("pss")}; USS (private) ${f("uss")}`);
  if (spawner) {
    const s = memory(spawner);
    console.log(
      `the daemon's spawner (one per Lazarus process): RSS ${(s.rss / 1024).toFixed(2)} MB, PSS ${(s.pss / 1024).toFixed(2)} MB, USS ${(s.uss / 1024).toFixed(2)} MB`,
    );
  }
} finally {
  if (daemon?.pid) {
    daemon.kill("SIGTERM");
    await new Promise((r) => daemon?.once("exit", r));
  }
  await stopMembers(state).catch(() => 0);
  rmSync(dir, { recursive: true, force: true });
}
