// One cell's long work does not hold up another's reconcile: while `lazarus checkpoint slow` is
// held in its middle (its cell frozen; LAZARUS_PAUSEPOINT), `lazarus watch` restarts the killed
// member of another cell; an apply that would act on the cell being checkpointed waits for that
// cell, never acting on it at the same time, and the daemon applies the change once it is free.
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AGENT,
  CLI,
  cellYaml,
  cleanup,
  isAlive,
  killAll,
  lazarus,
  procState,
  readRecord,
  stopWatches,
  tempDir,
  waitFor,
} from "../helpers.js";
import { watchCells } from "./watched.js";

let state: string;
let config: string;
const hold = path.join(tempDir("lazarus-pause-"), "hold");

const cell = (name: string, grace?: string) =>
  cellYaml({
    name,
    members: [{ identity: "agent:a", command: ["node", AGENT], restart: "always" }],
    ...(grace ? { grace } : {}),
  });
const ledger = () =>
  readFileSync(path.join(state, "ledger.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { cell: string; action: string });

beforeAll(async () => {
  ({ state, config } = await watchCells(
    "lazarus-celllock-state-",
    { "cells.d/slow.yaml": cell("slow"), "cells.d/other.yaml": cell("other") },
    ["slow", "other"],
    (r) => r.members[0]?.status === "running",
  ));
});
afterAll(async () => {
  rmSync(hold, { force: true });
  await stopWatches();
  killAll(state);
  cleanup(state, config, path.dirname(hold));
});

describe("per-cell locks", () => {
  it("the daemon restarts another cell's killed member while one cell's checkpoint runs", async () => {
    writeFileSync(hold, "");
    const slowPid = readRecord(path.join(state, "cells", "slow")).members[0]?.pid as number;
    const checkpoint = execa("node", [CLI, "checkpoint", "slow", "--state-dir", state], {
      reject: false,
      env: { NO_COLOR: "1", LAZARUS_PAUSEPOINT: `checkpoint:frozen@${hold}` },
    });
    try {
      await waitFor(() => procState(slowPid) === "T", 20_000); // frozen, held in the middle of its checkpoint

      // another cell's member dies: the daemon restarts it while the checkpoint is held
      const other = path.join(state, "cells", "other");
      const before = readRecord(other).members[0]?.pid as number;
      process.kill(-before, "SIGKILL");
      await waitFor(() => {
        const m = readRecord(other).members[0];
        return m?.status === "running" && m.pid !== before && isAlive(m.pid as number, undefined);
      }, 30_000);
      expect(procState(slowPid)).toBe("T"); // the checkpoint is still under way
      expect(checkpoint.exitCode).toBeNull(); // still running

      // an apply that would act on the cell being checkpointed (a grace change) waits for that cell
      // up to its lock timeout, then skips it naming the holder: never run beside the checkpoint
      writeFileSync(path.join(config, "cells.d", "slow.yaml"), cell("slow", "1h"));
      const busy = await lazarus(
        ["apply", "--yes", "--config", config, "--state-dir", state, "--lock-timeout", "500ms"],
        { timeoutMs: 60_000 },
      );
      expect(busy.stdout + busy.stderr).toMatch(
        /cell slow is busy: another Lazarus is acting on it: pid \d+ \(lazarus checkpoint slow/,
      );
      expect(readRecord(path.join(state, "cells", "slow")).graceMs).toBe(30 * 60_000);
    } finally {
      rmSync(hold, { force: true });
    }
    const done = await checkpoint;
    expect(done.exitCode, done.stderr).toBe(0);
    expect(procState(slowPid)).not.toBe("T");
    // the daemon catches up with the change once the cell is free
    await waitFor(() => readRecord(path.join(state, "cells", "slow")).graceMs === 3_600_000, 30_000);
    const v = await lazarus(["ledger", "verify", "--state-dir", state]);
    expect(v.exitCode, v.stdout + v.stderr).toBe(0);
    expect(ledger().filter((e) => e.cell === "slow" && e.action === "checkpoint")).toHaveLength(1);
  });
});
