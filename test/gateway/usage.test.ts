// A cell's model usage: counted per rolling window, kept across a restart of the gateway.
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { UsageBook, overBudget } from "../../src/gateway/usage.js";

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const rec = (time: number, input: number, output: number, cost = 0) => ({
  time,
  member: "a",
  model: "m",
  input,
  output,
  cost,
});

describe("usage book", () => {
  it("sums only the calls inside the window, and the same after a restart", async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "lz-usage-"));
    const t0 = Date.parse("2026-12-07T10:00:00Z");
    const book = new UsageBook(dir);
    await book.record("c", rec(t0, 100, 10, 0.5));
    await book.record("c", rec(t0 + 30 * 60_000, 200, 20, 1));
    await book.record("c", rec(t0 + 90 * 60_000, 300, 30, 2));
    const hour = 3600_000;
    expect(await book.spent("c", t0 + 90 * 60_000, hour)).toEqual({ tokens: 550, cost: 3 });
    expect(await book.spent("c", t0 + 90 * 60_000, 3 * hour)).toEqual({ tokens: 660, cost: 3.5 });
    expect(await book.spent("other", t0, hour)).toEqual({ tokens: 0, cost: 0 });
    await book.close();
    const again = new UsageBook(dir);
    expect(await again.spent("c", t0 + 90 * 60_000, 3 * hour)).toEqual({ tokens: 660, cost: 3.5 });
    await again.close();
  });

  it("says why a budget is spent, by tokens or by cost", () => {
    expect(overBudget({ tokens: 100, periodMs: 1 }, { tokens: 99, cost: 0 })).toBeUndefined();
    expect(overBudget({ tokens: 100, periodMs: 1 }, { tokens: 100, cost: 0 })).toMatch(/100 of 100 tokens/);
    expect(overBudget({ cost: 2, periodMs: 1 }, { tokens: 0, cost: 2.5 })).toMatch(/2.5000 of 2 in cost/);
  });
});
