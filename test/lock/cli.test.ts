// A second command while one holds the state dir: it waits up to --lock-timeout, then fails naming the holder.
import { existsSync } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { acquireLock } from "../../src/lock/lock.js";
import { cleanup, configDir, lazarus, tempDir } from "../helpers.js";

let state: string;
let config: string;
beforeEach(() => {
  state = tempDir("lazarus-state-");
  config = configDir({});
});
afterEach(() => cleanup(state, config));

const apply = (...args: string[]) => lazarus(["apply", "--yes", "--config", config, "--state-dir", state, ...args]);

describe("--lock-timeout", () => {
  it("fails at once with 0s, naming the holder and what to do", async () => {
    const lock = await acquireLock(path.join(state, "lazarus.lock"), "lazarus watch");
    try {
      const r = await apply("--lock-timeout", "0s");
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(
        `another Lazarus holds the state dir: pid ${process.pid} (lazarus watch, since ${lock.holder.since})`,
      );
      expect(r.stderr).toContain("--lock-timeout");
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    } finally {
      await lock.release();
    }
  });

  it("waits for the holder to finish, then runs", async () => {
    const lock = await acquireLock(path.join(state, "lazarus.lock"), "lazarus watch");
    const released = new Promise<number>((resolve) =>
      setTimeout(() => void lock.release().then(() => resolve(Date.now())), 1_500),
    );
    const r = await apply("--lock-timeout", "30s");
    const end = Date.now();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(end).toBeGreaterThanOrEqual(await released);
  });

  it("rejects a value that is not a duration, naming the flag", async () => {
    const r = await apply("--lock-timeout", "soon");
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(
      `option '--lock-timeout <duration>' argument 'soon' is invalid. "soon" is not a duration`,
    );
  });

  it.each([["apply"], ["sync"], ["checkpoint"], ["accept"]])("is offered by %s", async (cmd) => {
    expect((await lazarus([cmd, "--help"])).stdout).toContain("--lock-timeout <duration>");
  });
});

describe("a cell's lock", () => {
  it("is never a file outside <state>/locks: a name that is not a cell's is refused", async () => {
    for (const name of ["../../escaped", "/tmp/abs", "UPPER"]) {
      const r = await lazarus(["checkpoint", name, "--state-dir", state]);
      expect(r.exitCode, r.stdout + r.stderr).toBe(1);
      expect(r.stderr).toContain("is not a cell name");
    }
    expect(existsSync(path.join(state, "escaped.lock"))).toBe(false);
    expect(existsSync(path.join(path.dirname(state), "escaped.lock"))).toBe(false);
    expect(existsSync("/tmp/abs.lock")).toBe(false);
  });
});
