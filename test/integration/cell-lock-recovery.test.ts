// The recovery before a command works records what a killed run left in a cell (its journal
// entry) only while that cell's lock is free: an entry of a live process that holds the cell is
// its work in progress, not a crash, and is left alone until that holder is gone.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { lockCell } from "../../src/lock/cell-lock.js";
import { statePaths } from "../../src/cells/layout.js";
import { cleanup, configDir, lazarus, tempDir } from "../helpers.js";

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));
const recovers = (state: string) =>
  existsSync(path.join(state, "ledger.jsonl"))
    ? readFileSync(path.join(state, "ledger.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { action: string; cell: string })
        .filter((e) => e.action === "recover")
    : [];

describe("recovery and cell locks", () => {
  it("leaves the journal entry of a cell a live process holds, and records it once that holder is gone", async () => {
    const state = tempDir("lazarus-state-");
    const config = configDir({});
    dirs.push(state, config);
    const entry = path.join(state, "journal.d", "busy.json");
    mkdirSync(path.dirname(entry), { recursive: true });
    writeFileSync(
      entry,
      JSON.stringify({
        cell: "busy",
        action: "checkpoint",
        reason: "test",
        pid: process.pid,
        startedAt: "2030-01-01T00:00:00.000Z",
      }),
    );
    const lock = await lockCell(statePaths(state), "busy", "a test holding the cell", 0);
    try {
      const r = await lazarus([
        "apply",
        "--yes",
        "--config",
        config,
        "--state-dir",
        state,
        "--now",
        "2030-01-01T00:01:00Z",
      ]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(recovers(state)).toEqual([]);
      expect(existsSync(entry)).toBe(true);
    } finally {
      await lock.release();
    }
    const r = await lazarus([
      "apply",
      "--yes",
      "--config",
      config,
      "--state-dir",
      state,
      "--now",
      "2030-01-01T00:02:00Z",
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(recovers(state)).toMatchObject([{ cell: "busy" }]);
    expect(existsSync(entry)).toBe(false);
  });
});
