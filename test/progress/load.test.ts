// spec.progress as loaded: its defaults, and a bad value as an error at its line that says what to do.
import { describe, expect, it } from "vitest";
import { loadFileText } from "../../src/config/load.js";
import { formatDiagnostic } from "../../src/config/diagnostics.js";
import { AGENT, cellYaml } from "../helpers.js";

const file = "cells.d/p.yaml";
const worker = { identity: "agent:worker", role: "executor", command: ["node", AGENT] };
const load = (progress: string, more = "", members = [worker]) =>
  loadFileText(file, cellYaml({ name: "p", members, extra: `  progress: ${progress}${more ? `\n${more}` : ""}` }));

describe("spec.progress", () => {
  it("defaults to a 10m slice and onStall notify; a cell without it is never judged", () => {
    expect(load("{}").cells[0]?.progress).toEqual({ sliceMs: 600_000, onStall: "notify" });
    expect(load("{slice: 90s, onStall: abort}").cells[0]?.progress).toEqual({ sliceMs: 90_000, onStall: "abort" });
    expect(loadFileText(file, cellYaml({ name: "p", members: [worker] })).cells[0]?.progress).toBeUndefined();
  });

  it("refuses a slice outside 1s–24h, an unknown onStall, and substitute without a substitute, at their lines", () => {
    const diags = (p: string) => load(p).diagnostics.map(formatDiagnostic).join("\n");
    expect(diags("{slice: 0s}")).toMatch(/p\.yaml:\d+:\d+: error: spec\.progress\.slice: .*1s/);
    expect(diags("{slice: 25h}")).toMatch(/spec\.progress\.slice: slice exceeds the 1d maximum/);
    expect(diags("{onStall: retry}")).toMatch(/spec\.progress\.onStall/);
    expect(diags("{onStall: substitute}")).toMatch(
      /error: spec\.progress\.onStall: onStall: substitute needs a member with role substitute .*\(declare a substitute/,
    );
    const ok = load("{onStall: substitute}", "  policy: {allowSubstitutes: true}", [
      worker,
      { identity: "agent:stand-in", role: "substitute", command: ["node", AGENT], replaces: "agent:worker" } as never,
    ]);
    expect(ok.diagnostics).toEqual([]);
  });
});
