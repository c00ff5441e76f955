// lazarus events: the ledger as a readable stream, filtered by cell and time, followed with -f.
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, cellYaml, cleanup, configDir, lazarus, tempDir, waitFor } from "../helpers.js";

const human = (name: string) => cellYaml({ name, members: [{ identity: "human:h", role: "director" }] });
const dirs: string[] = [];
afterAll(() => cleanup(...dirs));

describe("lazarus events", () => {
  const config = configDir({ "cells.d/a.yaml": human("alpha"), "cells.d/b.yaml": human("beta") });
  const state = tempDir("lazarus-events-");
  dirs.push(config, state);
  const T0 = "2030-01-01T00:00:00Z";

  it("prints what was done to which cell, when and why; one cell's; the last n; as JSON lines", async () => {
    expect((await lazarus(["apply", "--yes", "-c", config, "-s", state, "--now", T0])).exitCode).toBe(0);
    const all = await lazarus(["events", "-s", state]);
    expect(all.exitCode).toBe(0);
    expect(all.stdout.trim().split("\n")).toEqual([
      expect.stringMatching(/^2030-01-01T00:00:00Z  alpha\s+create\s+new cell/),
      expect.stringMatching(/^2030-01-01T00:00:00Z  beta\s+create\s+new cell/),
    ]);
    expect((await lazarus(["events", "beta", "-s", state])).stdout).not.toContain("alpha");
    expect((await lazarus(["events", "-s", state, "--tail", "1"])).stdout.trim().split("\n")).toHaveLength(1);
    const json = (await lazarus(["events", "-s", state, "--json"])).stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { seq: number; cell: string; action: string });
    expect(json.map((e) => [e.seq, e.cell, e.action])).toEqual([
      [1, "alpha", "create"],
      [2, "beta", "create"],
    ]);
    expect((await lazarus(["events", "-s", state, "--since", "2031-01-01T00:00:00Z"])).stderr).toContain(
      "No events since",
    );
    const bad = await lazarus(["events", "-s", state, "--since", "soon"]);
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toContain('--since "soon"');
  });

  it("follows new events as they are recorded, and stops on SIGTERM", async () => {
    const follower = execa("node", [CLI, "events", "gamma", "-f", "-s", state], {
      reject: false,
      env: { NO_COLOR: "1" },
    });
    let seen = "";
    follower.stdout?.on("data", (d: Buffer) => (seen += d.toString()));
    try {
      await new Promise((r) => setTimeout(r, 500)); // it has read what is there (nothing for gamma)
      expect(seen).toBe("");
      const more = configDir({
        "cells.d/a.yaml": human("alpha"),
        "cells.d/b.yaml": human("beta"),
        "cells.d/g.yaml": human("gamma"),
      });
      dirs.push(more);
      expect(
        (await lazarus(["apply", "--yes", "-c", more, "-s", state, "--now", "2030-01-01T00:01:00Z"])).exitCode,
      ).toBe(0);
      await waitFor(() => seen.includes("gamma"), 10_000);
      expect(seen.trim().split("\n")).toEqual([expect.stringMatching(/^2030-01-01T00:01:00Z  gamma\s+create/)]);
    } finally {
      follower.kill("SIGTERM");
    }
    const r = await follower;
    expect(r.exitCode).toBe(0);
  });
});
