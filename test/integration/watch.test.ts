// The real daemon as a child process: file events, drift, time, signals, metrics.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AGENT,
  cellYaml,
  cleanup,
  configDir,
  freePort,
  isAlive,
  lazarus,
  procState,
  readRecord,
  startWatch,
  stopWatches,
  tempDir,
  waitFor,
  type Watch,
} from "../helpers.js";

let state: string;
let config: string;
let port: number;
let w: Watch;

function startDaemon(): Watch {
  return startWatch([
    "--config",
    config,
    "--state-dir",
    state,
    "--metrics-port",
    String(port),
    "--tick",
    "* * * * * *",
    "--stop-timeout",
    "2000",
  ]);
}

const lines = () => w.lines();
const live = (name: string) => path.join(state, "cells", name);
const running = (name: string) => {
  try {
    const m = readRecord(live(name)).members[0];
    return m !== undefined && m.status === "running" && isAlive(m.pid, m.startTime);
  } catch {
    return false;
  }
};
const agentCell = (name: string, ttl = "4h") =>
  cellYaml({ name, ttl, members: [{ identity: "agent:allegro", command: ["node", AGENT] }] });

beforeAll(async () => {
  state = tempDir("lazarus-watch-state-");
  config = configDir({ "cells.d/first.yaml": agentCell("first") });
  port = await freePort();
  w = startDaemon();
  await waitFor(() => lines().some((l) => l.msg === "watching"), 20_000);
});
afterAll(async () => {
  await stopWatches();
  cleanup(state, config);
});

describe("lazarus watch", () => {
  it("reconciles at start", () => {
    expect(running("first")).toBe(true);
    expect(lines().find((l) => l.action === "create")).toMatchObject({ cell: "first", msg: "applied" });
  });

  it("starts the member of a newly written cell file", async () => {
    writeFileSync(path.join(config, "cells.d/second.yaml"), agentCell("second"));
    await waitFor(() => running("second"), 10_000);
  });

  it("renews a cell when its ttl is raised", async () => {
    await waitFor(() => readRecord(live("second")).state === "active", 10_000);
    const rec = readRecord(live("second"));
    writeFileSync(path.join(config, "cells.d/second.yaml"), agentCell("second", "6h"));
    await waitFor(() => readRecord(live("second")).ttlMs === 6 * 3_600_000, 10_000);
    expect(Date.parse(readRecord(live("second")).expiresAt!)).toBe(Date.parse(rec.activatedAt!) + 6 * 3_600_000);
  });

  it("reports a broken file with its position, holds its cell, and keeps converging the others", async () => {
    const pid = readRecord(live("second")).members[0]!.pid;
    writeFileSync(
      path.join(config, "cells.d/second.yaml"),
      "apiVersion: lazarus/v1\nkind: Cell\nmetadata:\n  name: second\nspec: {project: [\n",
    );
    await waitFor(
      () => lines().some((l) => typeof l.msg === "string" && /cells\.d\/second\.yaml:\d+:\d+: error/.test(l.msg)),
      10_000,
    );
    writeFileSync(path.join(config, "cells.d/third.yaml"), agentCell("third"));
    await waitFor(() => running("third"), 10_000);
    expect(readRecord(live("second")).members[0]!.pid).toBe(pid);
    expect(running("second")).toBe(true);
    writeFileSync(path.join(config, "cells.d/second.yaml"), agentCell("second", "6h"));
    await new Promise((r) => setTimeout(r, 1000));
    expect(readRecord(live("second")).members[0]!.pid).toBe(pid); // fixed: nothing to do
  });

  it("restarts a killed member after its backoff", async () => {
    const m = readRecord(live("first")).members[0]!;
    process.kill(-(m.pid as number), "SIGKILL");
    await waitFor(() => readRecord(live("first")).members[0]!.status === "down", 10_000);
    await waitFor(() => running("first"), 20_000);
    expect(readRecord(live("first")).members[0]!.pid).not.toBe(m.pid);
  });

  it("closes a cell on its ttl by the clock alone, with no file change", async () => {
    writeFileSync(
      path.join(config, "cells.d/brief.yaml"),
      cellYaml({ name: "brief", ttl: "3s", members: [{ identity: "human:h", role: "director" }] }),
    );
    await waitFor(() => existsSync(live("brief")), 10_000);
    await waitFor(() => lines().some((l) => l.cell === "brief" && l.action === "close"), 10_000);
    expect(existsSync(path.join(state, "graveyard", "brief"))).toBe(true);
    expect(lines().find((l) => l.cell === "brief" && l.action === "close")?.reason).toMatch(/^ttl 3s expired at/);
  });

  it("serves Prometheus metrics and a health check", async () => {
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const value = (re: RegExp) => Number(re.exec(text)?.[1]);
    expect(value(/^lazarus_cells\{state="active"\} (\d+)/m)).toBe(3);
    expect(value(/^lazarus_actions_total\{action="create",status="applied"\} (\d+)/m)).toBe(4);
    expect(value(/^lazarus_cells\{state="closed"\} (\d+)/m)).toBe(1);
    expect(value(/^lazarus_reconcile_duration_seconds_count\{scope="cells"\} (\d+)/m)).toBeGreaterThan(0);
    expect(value(/^lazarus_errors_total\{kind="invalid-file"\} (\d+)/m)).toBeGreaterThan(0);
    expect(value(/^lazarus_last_successful_reconcile_timestamp_seconds (\S+)/m)).toBeGreaterThan(
      Date.now() / 1000 - 600,
    );
  });

  // The agent's own pid once it is ready (env.json is written after its SIGHUP handler is set).
  const agentPid = (name: string): number | undefined => {
    try {
      return (JSON.parse(readFileSync(path.join(live(name), "home", "allegro", "env.json"), "utf8")) as { pid: number })
        .pid;
    } catch {
      return undefined;
    }
  };

  it("reloads everything on SIGHUP and reconciles a change made behind its back", async () => {
    const m = readRecord(live("third")).members[0]!;
    const before = agentPid("third");
    // Behind its back: a member stopped by another user and a file changed without an event
    // the daemon would see (mtime and size kept the same are still re-read on a reload).
    process.kill(-(m.pid as number), "SIGKILL");
    w.child.kill("SIGHUP");
    await waitFor(() => lines().some((l) => l.msg === "SIGHUP: reloading everything"), 5000);
    await waitFor(() => readRecord(live("third")).members[0]!.status !== "running", 10_000);
    await waitFor(() => running("third"), 20_000);
    // ready before the next test's portfolio change signals it (a SIGHUP before its handler is set
    // would end it, and it would be in its restart backoff when the daemon is stopped below)
    await waitFor(() => agentPid("third") !== undefined && agentPid("third") !== before, 20_000);
  });

  it("writes an agent's portfolio when portfolios/ changes, and signals its process", async () => {
    writeFileSync(
      path.join(config, "portfolios/default.yaml"),
      "apiVersion: lazarus/v1\nkind: Portfolio\nmetadata: {name: default}\nspec:\n  models: [{model: m1, provider: p}]\n",
    );
    const file = path.join(live("first"), "home", "allegro", ".lazarus", "portfolio.json");
    await waitFor(() => existsSync(file), 10_000);
    await waitFor(() => lines().some((l) => l.action === "update-portfolio" && l.cell === "first"), 10_000);
    expect(running("first")).toBe(true);
    await waitFor(() => existsSync(path.join(live("first"), "home", "allegro", "hup.log")), 5000);
  });

  it("is the only daemon of its state dir, and lets a command through between its reconciles", async () => {
    const apply = await lazarus(["apply", "--yes", "--config", config, "--state-dir", state]);
    expect(apply.exitCode, apply.stderr).toBe(0); // it waited for the lock, at most --lock-timeout
    const second = await lazarus(["watch", "--config", config, "--state-dir", state]);
    expect(second.exitCode).toBe(1);
    expect(second.stderr).toContain(`pid ${w.pid} (lazarus watch`);
  });

  it("leaves members running on SIGTERM, and a new daemon adopts them", async () => {
    const pids = ["first", "second", "third"].map((n) => readRecord(live(n)).members[0]!.pid);
    w.child.kill("SIGTERM");
    const r = await w.child;
    expect(r.exitCode).toBe(0);
    expect(existsSync(path.join(state, "lazarus.lock"))).toBe(false);
    const seen = (n: string) =>
      JSON.stringify({
        n,
        m: readRecord(live(n)).members[0],
        state: procState(readRecord(live(n)).members[0]?.pid as number),
      });
    for (const n of ["first", "second", "third"])
      expect(
        running(n),
        `${seen(n)}\n${lines()
          .slice(-15)
          .map((l) => JSON.stringify(l))
          .join("\n")}`,
      ).toBe(true);
    w = startDaemon();
    await waitFor(() => lines().some((l) => l.msg === "watching"), 20_000);
    expect(lines().filter((l) => l.msg === "applied")).toEqual([]);
    expect(["first", "second", "third"].map((n) => readRecord(live(n)).members[0]!.pid)).toEqual(pids);
  });
});
