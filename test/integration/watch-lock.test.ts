// While `lazarus watch` runs, commands that change state work: the daemon takes the state-dir lock
// only while it reconciles, survives a command that holds it, and announces itself in watch.pid.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { acquireLock } from "../../src/lock/lock.js";
import {
  AGENT,
  cellYaml,
  cleanup,
  isAlive,
  lazarus,
  readRecord,
  stopWatches,
  waitFor,
  type Watch,
} from "../helpers.js";
import { watchCells } from "./watched.js";

let state: string;
let config: string;
let w: Watch;

const cell = (name: string) =>
  cellYaml({
    name,
    members: [
      { identity: "agent:allegro", command: ["node", AGENT] },
      { identity: "human:h", role: "director" },
    ],
  });
const lines = () => w.lines();
// Alive: its pid exists and is not a zombie (/proc, not kill -0).
const alive = (pid: number): boolean => isAlive(pid, undefined);

beforeAll(async () => {
  ({
    state,
    config,
    watch: w,
  } = await watchCells(
    "lazarus-watchlock-state-",
    { "cells.d/one.yaml": cell("one") },
    ["one"],
    (r) => r.state === "active",
    20_000,
  ));
});
afterAll(async () => {
  await stopWatches();
  cleanup(state, config);
});

describe("lazarus watch and the state-dir lock", () => {
  it("lets accept, checkpoint and apply run while it watches (the README quick start)", async () => {
    const token = readFileSync(path.join(state, "cells", "one", ".lazarus", "invites", "h.token"), "utf8");
    const acc = await lazarus(["accept", "one", "human:h", "--token", "-", "--state-dir", state], { input: token });
    expect(acc.exitCode, acc.stderr).toBe(0);
    const cp = await lazarus(["checkpoint", "one", "--state-dir", state]);
    expect(cp.exitCode, cp.stderr).toBe(0);
    const ap = await lazarus(["apply", "--yes", "--config", config, "--state-dir", state]);
    expect(ap.exitCode, ap.stderr).toBe(0);
    expect(readRecord(path.join(state, "cells", "one")).members.find((m) => m.identity === "human:h")?.status).toBe(
      "joined",
    );
  });

  it("announces itself in watch.pid, and a second watch on the same state dir refuses to start", async () => {
    const rec = JSON.parse(readFileSync(path.join(state, "watch.pid"), "utf8")) as {
      pid: number;
      startTime?: number;
      command: string;
    };
    expect(rec).toMatchObject({ pid: w.pid, command: "lazarus watch" });
    expect(rec.startTime).toBeTypeOf("number");
    const second = await lazarus(["watch", "--config", config, "--state-dir", state], { timeoutMs: 20_000 });
    expect(second.exitCode).toBe(1);
    expect(second.stderr).toContain(`a lazarus watch already runs for this state dir: pid ${w.pid}`);
  });

  it("survives a command holding the lock past its wait, and reconciles once it is free", async () => {
    const lock = await acquireLock(path.join(state, "lazarus.lock"), "lazarus apply");
    try {
      writeFileSync(path.join(config, "cells.d", "two.yaml"), cell("two"));
      await waitFor(() => lines().some((l) => l.msg === "state dir busy: trying again shortly"), 15_000);
      await new Promise((r) => setTimeout(r, 1_500)); // several retries while it is held
      expect(existsSync(path.join(state, "cells", "two"))).toBe(false);
      expect(alive(w.pid)).toBe(true);
    } finally {
      await lock.release();
    }
    await waitFor(() => existsSync(path.join(state, "cells", "two", ".lazarus", "cell.json")), 15_000);
    expect(alive(w.pid)).toBe(true);
  });

  it("removes watch.pid when it stops", async () => {
    w.child.kill("SIGTERM");
    const r = await w.child;
    expect(r.exitCode).toBe(0);
    expect(existsSync(path.join(state, "watch.pid"))).toBe(false);
    expect(existsSync(path.join(state, "lazarus.lock"))).toBe(false);
    void isAlive;
  });
});
