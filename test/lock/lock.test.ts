import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { hostname } from "node:os";
import { acquireLock } from "../src/lock/lock.js";
import { cleanup, tempDir } from "./helpers.js";

let dir: string;
beforeEach(() => {
  dir = tempDir();
});
afterEach(() => cleanup(dir));

describe("the state-dir lock", () => {
  it("refuses a second holder at once, naming the first", async () => {
    const file = path.join(dir, "lazarus.lock");
    const first = await acquireLock(file, "lazarus apply");
    await expect(acquireLock(file, "lazarus apply")).rejects.toThrow(`another Lazarus holds the state dir: pid ${process.pid} (lazarus apply`);
    await first.release();
    const again = await acquireLock(file, "lazarus apply");
    await again.release();
  });

  it("takes over a lock left by a dead process", async () => {
    const file = path.join(dir, "lazarus.lock");
    // pid 2^22-1 is above the default pid_max, so no process holds it.
    writeFileSync(file, JSON.stringify({ pid: 4_194_303, startTime: 1, command: "lazarus apply", host: hostname(), since: "2026-01-01T00:00:00Z" }));
    const lock = await acquireLock(file, "lazarus apply");
    expect(lock.holder.pid).toBe(process.pid);
    await lock.release();
  });
});
