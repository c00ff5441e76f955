// Applying cells concurrently (--parallelism) records exactly what a serial apply records: the same
// ledger entries in plan order, a chain that verifies; and a kill -9 while many cells are in flight
// converges on the next run with no cell half-built and every member started exactly once.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { cellProcesses, cellYaml, cleanup, configDir, isAlive, lazarus, readRecord, tempDir } from "../helpers.js";

const CELLS = 40;
const NOW = "2030-01-01T00:00:00Z";

let dirs: string[] = [];
afterEach(() => {
  cleanup(...dirs);
  dirs = [];
});

// 40 cells in 4 files; each runs one member that sleeps (cheap enough for 40 at once).
function fleet(): string {
  const files: Record<string, string> = {};
  for (let f = 0; f < 4; f++) {
    const docs: string[] = [];
    for (let i = f * 10; i < (f + 1) * 10; i++)
      docs.push(cellYaml({ name: `c${i}`, members: [{ identity: "agent:a", command: ["sleep", "600"] }] }));
    files[`cells.d/team-${f}.yaml`] = docs.join("---\n");
  }
  return configDir(files);
}

interface Entry {
  seq: number;
  cell: string;
  action: string;
  reason: string;
}
const ledgerOf = (state: string): Entry[] =>
  readFileSync(path.join(state, "ledger.jsonl"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Entry);

describe("a concurrent apply", () => {
  it("records the same ledger, in plan order, as a serial apply", async () => {
    const config = fleet();
    const serial = tempDir("lazarus-state-");
    const concurrent = tempDir("lazarus-state-");
    dirs.push(config, serial, concurrent);
    const plan = await lazarus(["plan", "--json", "--config", config, "--state-dir", concurrent, "--now", NOW]);
    const planned = (JSON.parse(plan.stdout) as { actions: { cell: string; action: string }[] }).actions.map(
      (a) => `${a.cell} ${a.action}`,
    );
    expect(planned).toHaveLength(CELLS);

    const one = await lazarus([
      "apply",
      "--yes",
      "--parallelism",
      "1",
      "--config",
      config,
      "--state-dir",
      serial,
      "--now",
      NOW,
    ]);
    expect(one.exitCode, one.stderr).toBe(0);
    const many = await lazarus([
      "apply",
      "--yes",
      "--parallelism",
      "8",
      "--config",
      config,
      "--state-dir",
      concurrent,
      "--now",
      NOW,
    ]);
    expect(many.exitCode, many.stderr).toBe(0);

    // What the CLI printed, and what the ledger holds, follow the plan.
    const printed = many.stdout
      .split("\n")
      .filter((l) => l.trim().endsWith("done"))
      .map((l) => l.trim().split(/\s+/)[2]);
    expect(printed).toEqual(planned.map((p) => p.split(" ")[0]));
    for (const state of [serial, concurrent]) {
      const verify = await lazarus(["ledger", "verify", "--state-dir", state]);
      expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0);
      const entries = ledgerOf(state);
      expect(entries.map((e) => e.seq)).toEqual(entries.map((_, i) => i + 1));
      expect(entries.map((e) => `${e.cell} ${e.action}`)).toEqual(planned);
    }
    const strip = (e: Entry) => ({ seq: e.seq, cell: e.cell, action: e.action, reason: e.reason });
    expect(ledgerOf(concurrent).map(strip)).toEqual(ledgerOf(serial).map(strip));

    // Every cell is whole and its member runs, once.
    for (const state of [serial, concurrent]) {
      const pids: number[] = [];
      for (let i = 0; i < CELLS; i++) {
        const rec = readRecord(path.join(state, "cells", `c${i}`));
        expect(rec.state).toBe("active");
        const m = rec.members[0]!;
        expect(m.status).toBe("running");
        expect(isAlive(m.pid, m.startTime)).toBe(true);
        pids.push(m.pid as number);
      }
      expect(cellProcesses(state).sort()).toEqual(pids.sort());
      expect(readdirSync(path.join(state, "journal.d"))).toEqual([]);
    }
  });

  it.each(["create:before-rename", "member:after-spawn", "applied:create"])(
    "killed at %s with 8 cells in flight, converges on the next apply",
    async (point) => {
      const config = fleet();
      const state = tempDir("lazarus-state-");
      dirs.push(config, state);
      const args = ["--config", config, "--state-dir", state, "--now", NOW, "--parallelism", "8"];

      const crashed = await lazarus(["apply", "--yes", ...args], { env: { LAZARUS_FAILPOINT: point } });
      expect(crashed.signal, crashed.stdout + crashed.stderr).toBe("SIGKILL");
      // The kill left at least the action it hit journaled (others in flight may be too).
      const journaled = readdirSync(path.join(state, "journal.d")).filter((f) => f.endsWith(".json"));
      expect(journaled.length).toBeGreaterThanOrEqual(1);

      const again = await lazarus(["apply", "--yes", ...args]);
      expect(again.exitCode, again.stdout + again.stderr).toBe(0);
      const plan = await lazarus(["plan", "--detailed-exitcode", ...args.slice(0, 6)]);
      expect(plan.exitCode, plan.stdout).toBe(0);

      // No cell half-built: no staging dir, every cell active with its member running exactly once.
      expect(readdirSync(path.join(state, "cells")).filter((e) => e.startsWith("."))).toEqual([]);
      const pids: number[] = [];
      for (let i = 0; i < CELLS; i++) {
        const rec = readRecord(path.join(state, "cells", `c${i}`));
        expect(rec.state, `c${i}`).toBe("active");
        const m = rec.members[0]!;
        expect(isAlive(m.pid, m.startTime), `c${i} runs`).toBe(true);
        pids.push(m.pid as number);
      }
      expect(cellProcesses(state).sort()).toEqual(pids.sort());

      // The ledger verifies and records each interrupted action as a recovery; every cell has its
      // create recorded, or (killed after its effects, before its entry) a recovery.
      const verify = await lazarus(["ledger", "verify", "--state-dir", state]);
      expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0);
      const entries = ledgerOf(state);
      const recovered = entries.filter((e) => e.action === "recover").map((e) => e.cell);
      expect(recovered.sort()).toEqual(journaled.map((f) => f.replace(/\.json$/, "")).sort());
      const created = new Set(entries.filter((e) => e.action === "create").map((e) => e.cell));
      for (let i = 0; i < CELLS; i++)
        expect(created.has(`c${i}`) || recovered.includes(`c${i}`), `c${i} recorded`).toBe(true);
      expect(existsSync(path.join(state, "journal.d")) ? readdirSync(path.join(state, "journal.d")) : []).toEqual([]);
    },
  );
});
