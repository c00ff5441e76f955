// A committer's text reaching the operator's terminal: file names and YAML values may hold escape
// sequences (a double-quoted "\e[2K\r" is valid YAML) that would erase or rewrite lines of a plan
// under review. Lazarus prints them escaped, never raw.
import { rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cellYaml, configDir, lazarus, tempDir } from "../helpers.js";

const RAW_CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/;

describe("a committer's control characters in plan and validate output", () => {
  const cfg = configDir({
    "cells.d/live.yaml": cellYaml({ name: "live", members: [{ identity: "human:h", role: "director" }] }),
  });
  const state = tempDir("lazarus-state-");
  afterAll(() => {
    for (const d of [cfg, state]) rmSync(d, { recursive: true, force: true });
  });

  it("are printed escaped, in diagnostics and in the held lines of a plan", async () => {
    expect((await lazarus(["apply", "--yes", "-c", cfg, "-s", state])).exitCode).toBe(0);
    // A change of project on the live cell is an error that quotes the new value...
    writeFileSync(
      path.join(cfg, "cells.d", "live.yaml"),
      cellYaml({ name: "live", members: [{ identity: "human:h", role: "director" }] }).replace(
        "project: Org/repo#1",
        'project: "Org/repo\\e[2K\\rFAKE\\e]0;title\\a"',
      ),
    );
    // ...and a file whose name holds an escape sequence.
    writeFileSync(
      path.join(cfg, "cells.d", "b\x1b[1A\x1b[2Kx.yaml"),
      cellYaml({ name: "other" }).replace("owner: human:alexander", "owner: nobody"),
    );
    for (const args of [["validate"], ["plan"], ["plan", "--format", "markdown"]]) {
      const r = await lazarus([...args, "-c", cfg, "-s", state]);
      const out = r.stdout + r.stderr;
      expect(out).toContain("error"); // the command ran and reported the bad files
      expect(out).toMatch(/\\x1b\[2K/); // the sequences are shown, escaped
      expect({ args, out }).not.toMatchObject({ out: expect.stringMatching(RAW_CONTROL) });
    }
  });
});
