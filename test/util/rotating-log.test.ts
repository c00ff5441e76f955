// A log a busy writer cannot grow without bound (egress and gateway events): past its size it
// rotates to <file>.1, and the egress readers read both.
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { RotatingLog } from "../../src/util/rotating-log.js";
import { readEgressEntries } from "../../src/egress/events.js";

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

  it("with flushMs, gathers lines and appends them together, in order, at flush or close", async () => {
    const file = path.join(dir, "gathered.jsonl");
    const log = new RotatingLog(file, 1 << 20, 3_600_000); // a timer that never fires in this test
    for (let i = 0; i < 10; i++) log.write(event(i));
    await new Promise((r) => setTimeout(r, 50)); // any write already made would have landed by now
    expect(readFileSync(file, "utf8")).toBe(""); // gathered, not yet written
    log.flush();
    for (let i = 10; i < 20; i++) log.write(event(i));
    await log.close(); // writes what is gathered
    const nums = (await readEgressEntries(file)).map((e) => Number(/attempt (\d+)/.exec(e.reason)?.[1]));
    expect(nums).toEqual([...Array(20).keys()]);
  });

  it("with flushMs, writes at once what passes 64 KiB, and the rest at the timer", async () => {
    const file = path.join(dir, "big.jsonl");
    const log = new RotatingLog(file, 1 << 30, 3_600_000);
    const big = { ...event(0), reason: "x".repeat(70_000) };
    log.write(big);
    await new Promise((r) => setTimeout(r, 50));
    expect(readFileSync(file, "utf8").length).toBeGreaterThan(70_000); // not held for the timer
    await log.close();
  });
});
