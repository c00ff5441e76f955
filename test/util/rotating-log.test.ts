// A log a busy writer cannot grow without bound (egress and gateway events): past its size it
// rotates to <file>.1, and the egress readers read both.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { RotatingLog } from "../../src/util/rotating-log.js";
import { readEgressEntries } from "../../src/egress/events.js";
import { waitFor } from "../helpers.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "lz-rotating-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const event = (i: number) => ({
  time: new Date(Date.UTC(2026, 11, 7, 0, 0, i)).toISOString(),
  cell: "c",
  member: "m",
  host: "refused.example",
  port: 443,
  verdict: "refused",
  reason: `attempt ${i}`,
  bytesUp: 0,
  bytesDown: 0,
  durationMs: 0,
});

describe("a rotating log", () => {
  it("keeps at most two files of about its size, and the egress reader reads both in order", async () => {
    const file = path.join(dir, "events.jsonl");
    const log = new RotatingLog(file, 4096);
    for (let i = 0; i < 400; i++) {
      log.write(event(i));
      if (i % 20 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    await log.close();
    const size = (f: string): number => statSync(f).size;
    expect(size(`${file}.1`)).toBeLessThan(2 * 4096);
    expect(size(file)).toBeLessThan(2 * 4096);
    const entries = await readEgressEntries(file);
    const nums = entries.map((e) => Number(/attempt (\d+)/.exec(e.reason)?.[1]));
    expect(nums.at(-1)).toBe(399);
    expect(nums).toEqual([...nums].sort((a, b) => a - b)); // oldest first, across the two files
    expect(nums.length).toBeLessThan(400); // the oldest are gone
    for (const f of [file, `${file}.1`]) {
      for (const line of readFileSync(f, "utf8").split("\n").filter(Boolean))
        expect(() => JSON.parse(line)).not.toThrow();
    }
  });

  it("with flushMs, writes a window's first line at once and gathers the rest until flush or close, in order", async () => {
    const file = path.join(dir, "gathered.jsonl");
    const log = new RotatingLog(file, 1 << 20, 3_600_000); // a window that does not end by itself in this test
    const lines = (): number => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean).length : 0);
    for (let i = 0; i < 10; i++) log.write(event(i));
    await waitFor(() => lines() === 1); // the first, at once
    await new Promise((r) => setTimeout(r, 50)); // any other write already made would have landed by now
    expect(lines()).toBe(1); // the other nine are gathered
    log.flush();
    await waitFor(() => lines() === 10);
    log.write(event(10)); // a new window: at once
    for (let i = 11; i < 20; i++) log.write(event(i));
    await log.close(); // writes what is gathered
    const nums = (await readEgressEntries(file)).map((e) => Number(/attempt (\d+)/.exec(e.reason)?.[1]));
    expect(nums).toEqual([...Array(20).keys()]);
  });

  it("with flushMs, writes at once what passes 64 KiB, and the rest at the timer", async () => {
    const file = path.join(dir, "big.jsonl");
    const log = new RotatingLog(file, 1 << 30, 3_600_000);
    log.write(event(0)); // opens a window
    const big = { ...event(1), reason: "x".repeat(70_000) };
    log.write(big);
    await waitFor(() => existsSync(file) && readFileSync(file, "utf8").length > 70_000); // not held for the window
    await log.close();
  });
});
