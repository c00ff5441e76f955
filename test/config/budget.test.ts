// spec.budget as loaded: the rolling window it is counted in, and the operator's ceilings per day
// (LAZARUS_MAX_BUDGET_TOKENS, LAZARUS_MAX_BUDGET_COST): an ask above one is an error at its line,
// through the real CLI.
import { describe, expect, it, afterAll } from "vitest";
import { loadFileText } from "../../src/config/load.js";
import { effectiveBudget, perDay } from "../../src/config/budget.js";
import { hostLimits } from "../../src/host/limits.js";
import { cellYaml, cleanup, configDir, lazarus, tempDir } from "../helpers.js";

const text = (budget: string) =>
  cellYaml({ name: "spender", extra: `  budget: ${budget}`, members: [{ identity: "human:a", role: "director" }] });

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));

describe("spec.budget", () => {
  it("loads tokens and cost per period", () => {
    const r = loadFileText("cells.d/a.yaml", text("{tokens: 5000, cost: 2.5, period: 1h}"));
    expect(r.diagnostics).toEqual([]);
    expect(r.cells[0]?.budget).toEqual({ tokens: 5000, cost: 2.5, periodMs: 3_600_000 });
  });

  it("needs tokens or cost, and a period from 1m to 31d, each at its line", () => {
    const none = loadFileText("cells.d/a.yaml", text("{period: 1h}")).diagnostics;
    expect(none).toMatchObject([{ field: "spec.budget", line: 8, message: "a budget needs tokens, cost or both" }]);
    const long = loadFileText("cells.d/a.yaml", text("{tokens: 5, period: 40d}")).diagnostics;
    expect(long).toMatchObject([{ field: "spec.budget.period", line: 8 }]);
  });

  it("counts what a budget allows in a day by how many of its periods a day holds", () => {
    expect(perDay(100, 3_600_000)).toBe(2400);
    expect(perDay(100, 7 * 86_400_000)).toBe(100);
    expect(effectiveBudget({}, hostLimits({ LAZARUS_MAX_BUDGET_TOKENS: "9000" }))).toEqual({
      tokens: 9000,
      periodMs: 86_400_000,
    });
    expect(effectiveBudget({}, hostLimits({}))).toBeUndefined();
  });

  it("above the operator's ceiling is an error at its line; a bad ceiling is a BAD_SETTING", async () => {
    const config = configDir({ "cells.d/a.yaml": text("{tokens: 1000, cost: 1, period: 1h}") });
    const state = tempDir("lazarus-state-");
    dirs.push(config, state);
    const env = { LAZARUS_MAX_BUDGET_TOKENS: "10000", LAZARUS_MAX_BUDGET_COST: "100" };
    const r = await lazarus(["validate", "--config", config, "--state-dir", state, "--json"], { env });
    expect(r.exitCode).not.toBe(0);
    const out = JSON.parse(r.stdout) as { diagnostics: { field: string; line: number; message: string }[] };
    expect(out.diagnostics).toMatchObject([
      {
        field: "spec.budget.tokens",
        line: 8,
        message: expect.stringMatching(
          /allows up to 24000 a day, above this host's ceiling of 10000 a day \(LAZARUS_MAX_BUDGET_TOKENS\)/,
        ),
      },
    ]);
    const bad = await lazarus(["validate", "--config", config, "--state-dir", state], {
      env: { LAZARUS_MAX_BUDGET_COST: "-3" },
    });
    expect(bad.stderr + bad.stdout).toMatch(/LAZARUS_MAX_BUDGET_COST/);
  });
});
