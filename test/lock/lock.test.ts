import { execa } from "execa";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { acquireLock } from "../../src/lock/lock.js";
import { ROOT, cleanup, tempDir, waitFor } from "../helpers.js";

let dir: string;
let file: string;
beforeEach(() => {
  dir = tempDir();
  file = path.join(dir, "lazarus.lock");
});
afterEach(() => cleanup(dir));

// pid 2^22-1 is above the default pid_max, so no process holds it.
const deadHolder = (since = "2026-01-01T00:00:00Z") =>
  JSON.stringify({
    pid: 4_194_303,
    startTime: 1,
    command: "lazarus apply",
    host: hostname(),
    since,
    token: "deadbeefdeadbeef",
  });

describe("the state-dir lock", () => {
  it("refuses a second holder at once, naming the first", async () => {
    const first = await acquireLock(file, "lazarus apply");
    await expect(acquireLock(file, "lazarus apply")).rejects.toThrow(
      `another Lazarus holds the state dir: pid ${process.pid} (lazarus apply`,
    );
    await first.release();
    const again = await acquireLock(file, "lazarus apply");
    await again.release();
  });

  it("takes over a lock left by a dead process", async () => {
    writeFileSync(file, deadHolder());
    const lock = await acquireLock(file, "lazarus apply");
    expect(lock.holder.pid).toBe(process.pid);
    await lock.release();
    expect(readdirSync(dir)).toEqual([]);
  });

  it("holds a complete record from the moment the lock file exists", async () => {
    const lock = await acquireLock(file, "lazarus apply");
    expect(JSON.parse(readFileSync(file, "utf8"))).toMatchObject({
      pid: process.pid,
      command: "lazarus apply",
      token: lock.holder.token,
    });
    expect(readdirSync(dir)).toEqual(["lazarus.lock"]); // the temp file it was linked from is gone
    await lock.release();
    expect(existsSync(file)).toBe(false);
  });

  it("waits up to --lock-timeout for a live holder, then takes the lock", async () => {
    const first = await acquireLock(file, "lazarus watch");
    setTimeout(() => void first.release(), 300);
    const t0 = Date.now();
    const second = await acquireLock(file, "lazarus apply", { timeoutMs: 5_000 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(second.holder.command).toBe("lazarus apply");
    await second.release();
  });

  it("gives up after the timeout, naming the holder and what to do", async () => {
    const first = await acquireLock(file, "lazarus watch");
    const t0 = Date.now();
    const err = await acquireLock(file, "lazarus apply", { timeoutMs: 400 }).catch((e: unknown) => e);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
    expect(String(err)).toMatch(
      new RegExp(
        `another Lazarus holds the state dir: pid ${process.pid} \\(lazarus watch, since ${first.holder.since}\\); waited 400ms; .*--lock-timeout`,
      ),
    );
    await first.release();
  });

  it("never releases a lock that another holder took", async () => {
    const first = await acquireLock(file, "lazarus apply");
    writeFileSync(file, deadHolder()); // as if its record were replaced
    await first.release();
    expect(existsSync(file)).toBe(true);
  });

  it("lets exactly one of many contenders take over a dead holder's lock", async () => {
    for (let round = 0; round < 4; round++) {
      writeFileSync(file, deadHolder(`2026-01-01T00:00:0${round}Z`));
      const sig = tempDir("lazarus-lock-once-");
      const [go, done] = [path.join(sig, "go"), path.join(sig, "done")];
      const outs = Array.from({ length: 8 }, () => "");
      const procs = outs.map((_, i) => {
        const p = execa(process.execPath, [path.join(ROOT, "test/fixtures/lock-once.mjs"), file, go, done]);
        p.stdout?.on("data", (d: Buffer) => (outs[i] += d.toString()));
        return p;
      });
      try {
        // Released together once all are loaded; the winner holds until every other has tried.
        await waitFor(() => outs.every((o) => o.includes("ready")), 60_000);
        writeFileSync(go, "");
        await waitFor(() => outs.every((o) => o.includes("won") || o.includes("lost")), 60_000);
        expect(outs.filter((o) => o.includes("won"))).toHaveLength(1);
      } finally {
        writeFileSync(done, "");
        await Promise.all(procs);
        cleanup(sig);
      }
      expect(readdirSync(dir)).toEqual([]); // no guard, temp or lock file left behind
    }
  }, 180_000);
});
