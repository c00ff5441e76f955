// A sandbox cell on a host that lacks what it needs is an error at its line in validate and
// plan, and the cell is held — never half-built.
import { rmSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { detectCgroups } from "../../src/backends/sandbox/cgroup.js";
import { cellYaml, configDir, lazarus, tempDir } from "../helpers.js";
import { skipReason } from "./helpers.js";

const v2 = detectCgroups("/sys/fs/cgroup", "v2");
const v2WithoutMemory = v2?.kind === "v2" && !v2.controllers.has("memory");
if (!skipReason && !v2WithoutMemory)
  console.warn(
    "SKIPPED: an unenforceable limit: this host's cgroup2 tree has a memory controller (or none is mounted), so no real gap to test",
  );

describe.skipIf(skipReason || !v2WithoutMemory)("a declared limit the host cannot enforce", () => {
  const cfg = configDir({
    "cells.d/m.yaml": cellYaml({ name: "capped", extra: "  backend: sandbox\n  resources: {memory: 1Gi}" }),
  });
  const state = tempDir();
  afterAll(() => {
    for (const d of [cfg, state]) rmSync(d, { recursive: true, force: true });
  });

  it("is an error naming the file, line and controller in validate and plan, and nothing is created", async () => {
    const env = { LAZARUS_CGROUP_MODE: "v2" }; // this host's v2 tree has no memory controller
    const v = await lazarus(["validate", "-c", cfg], { env });
    expect(v.exitCode).toBe(1);
    expect(v.stdout + v.stderr).toMatch(/cells\.d\/m\.yaml:\d+:\d+.*spec\.resources.*no v2 memory controller/s);
    const a = await lazarus(["apply", "--yes", "-c", cfg, "-s", state], { env });
    expect(a.exitCode).toBe(1);
    expect(a.stderr).toMatch(/m\.yaml:\d+:\d+: error: spec\.resources/);
    const s = await lazarus(["status", "--json", "-s", state]);
    expect(JSON.parse(s.stdout).cells).toEqual([]);
  });
});
