// A `lazarus checkpoint` killed while the cell is frozen must not leave its members stopped:
// status shows the cell frozen by a dead checkpointer, and the next command that takes the lock
// thaws it.
import { readdirSync, rmSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { AGENT, cellYaml, cleanup, configDir, lazarus, readRecord, tempDir, waitFor } from "../helpers.js";
import { procState } from "../sandbox/helpers.js";

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));
const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();

describe("a checkpoint killed while the cell is frozen", () => {
  it("is shown in status and thawed by the next command", async () => {
    const state = tempDir("lazarus-state-");
    const config = configDir({
      "cells.d/f.yaml": cellYaml({ name: "f", members: [{ identity: "agent:a", command: ["node", AGENT] }] }),
    });
    dirs.push(state, config);
    const run = (args: string[], env: Record<string, string> = {}) =>
      lazarus([...args, "--config", config, "--state-dir", state], { env });
    expect((await run(["apply", "--now", T(0)])).exitCode).toBe(0);
    const pid = readRecord(path.join(state, "cells", "f")).members[0]?.pid as number;
    const killed = await run(["checkpoint", "f", "--now", T(1)], { LAZARUS_FAILPOINT: "checkpoint:frozen" });
    expect(killed.signal).toBe("SIGKILL");
    expect(procState(pid)).toBe("T"); // stopped, and nothing of that run is left to resume it
    const status = await run(["status", "f", "--json", "--now", T(1)]);
    expect(JSON.parse(status.stdout).cells[0].frozen).toMatchObject({ abandoned: true });
    expect((await run(["status", "f", "--now", T(1)])).stdout).toContain("whose process");
    const again = await run(["checkpoint", "f", "--now", T(2)]);
    expect(again.exitCode, again.stderr).toBe(0);
    await waitFor(() => procState(pid) !== "T");
    expect(JSON.parse((await run(["status", "f", "--json", "--now", T(2)])).stdout).cells[0].frozen).toBeNull();
    expect(readdirSync(path.join(state, "frozen"))).toEqual([]); // the index entry goes with the thaw

    // A state dir from before the frozen index (a marker, no <state>/frozen/): still thawed.
    const killed2 = await run(["checkpoint", "f", "--now", T(3)], { LAZARUS_FAILPOINT: "checkpoint:frozen" });
    expect(killed2.signal).toBe("SIGKILL");
    expect(procState(pid)).toBe("T");
    rmSync(path.join(state, "frozen"), { recursive: true });
    expect((await run(["apply", "--now", T(4)])).exitCode).toBe(0);
    await waitFor(() => procState(pid) !== "T");
    expect(readdirSync(path.join(state, "frozen"))).toEqual([]);
    process.kill(-pid, "SIGKILL");
  });
});
