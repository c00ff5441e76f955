// Numeric, duration, size and cron flags: one typed parser; a bad value is refused with the flag's
// name before anything runs (it used to become NaN: a NaN stop timeout SIGKILLs at once, a NaN
// --max-close switches the deletion budget off).
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { parseFlag } from "../../src/cli/flags.js";
import { CLI, cellYaml, cleanup, configDir, isAlive, lazarus, readRecord, tempDir, waitFor } from "../helpers.js";

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));

describe("parseFlag", () => {
  it.each([
    [{ kind: "duration", plainMs: true } as const, "10s", 10_000],
    [{ kind: "duration", plainMs: true } as const, "500ms", 500],
    [{ kind: "duration", plainMs: true } as const, "10000", 10_000],
    [{ kind: "duration", plainMs: true } as const, "1m30s", 90_000],
    [{ kind: "duration" } as const, "0", 0],
    [{ kind: "duration" } as const, "2m", 120_000],
    [{ kind: "int", min: 0 } as const, "5", 5],
    [{ kind: "int", min: 0 } as const, "0", 0],
    [{ kind: "number", min: 0, max: 100 } as const, "12.5", 12.5],
    [{ kind: "size" } as const, "4Mi", 4 * 1024 * 1024],
    [{ kind: "size" } as const, "2048", 2048],
    [{ kind: "cron" } as const, "*/5 * * * * *", "*/5 * * * * *"],
  ])("accepts %j %s", (type, text, value) => {
    expect(parseFlag(type, text)).toBe(value);
  });

  it.each([
    [{ kind: "duration", plainMs: true } as const, "x"],
    [{ kind: "duration", plainMs: true } as const, "10 s"],
    [{ kind: "duration", plainMs: true } as const, "-5"],
    [{ kind: "duration", plainMs: true } as const, "99999999999999999999d"],
    [{ kind: "duration" } as const, "5000"], // not milliseconds where that was never the meaning
    [{ kind: "duration", min: 1 } as const, "0s"],
    [{ kind: "int", min: 0 } as const, "five"],
    [{ kind: "int", min: 0 } as const, "1.5"],
    [{ kind: "int", min: 0 } as const, "-1"],
    [{ kind: "int", min: 0 } as const, ""],
    [{ kind: "int", min: 0, max: 65535 } as const, "70000"],
    [{ kind: "number", min: 0, max: 100 } as const, "150"],
    [{ kind: "number", min: 0, max: 100 } as const, "NaN"],
    [{ kind: "number", min: 0 } as const, "Infinity"],
    [{ kind: "size" } as const, "lots"],
    [{ kind: "size" } as const, "0"],
    [{ kind: "cron" } as const, "x"],
  ])("refuses %j %s", (type, text) => {
    expect(() => parseFlag(type, text)).toThrow(/is not|is shorter/);
  });
});

describe("bad flag values through the CLI", () => {
  const config = configDir({});
  const state = tempDir("lazarus-state-");
  dirs.push(config, state);
  const common = ["--config", config, "--state-dir", state];

  it.each([
    [["watch", "--debounce", "x"], "--debounce <duration>"],
    [["watch", "--tick", "x"], "--tick <cron>"],
    [["watch", "--stop-timeout", "soon"], "--stop-timeout <duration>"],
    [["watch", "--resync", "0s"], "--resync <duration>"],
    [["watch", "--metrics-port", "http"], "--metrics-port <port>"],
    [["watch", "--max-close", "five"], "--max-close <n>"],
    [["watch", "--log-level", "loud"], "--log-level <level>"],
    [["apply", "--stop-timeout", "x"], "--stop-timeout <duration>"],
    [["apply", "--lock-timeout", "forever"], "--lock-timeout <duration>"],
    [["validate", "--max-file-size", "big"], "--max-file-size <size>"],
  ])("%j is refused naming the flag, and nothing runs", async (args, flag) => {
    const r = await execa("node", [CLI, ...args, ...common], {
      reject: false,
      timeout: 20_000,
      env: { NO_COLOR: "1" },
    });
    expect(r.timedOut).toBe(false);
    expect(r.exitCode).toBe(1);
    expect(String(r.stderr)).toContain(`option '${flag}' argument`);
    expect(String(r.stderr)).not.toMatch(/^\s+at /m); // no stack trace
  });

  it.each([
    [["sync", "--repo", "/nonexistent", "--max-close", "five"], "--max-close <n>"],
    [["sync", "--repo", "/nonexistent", "--max-close-percent", "150"], "--max-close-percent <p>"],
    [["portfolio", "resolve", "--agent", "a", "--attempt", "first"], "--attempt <n>"],
    [["portfolio", "resolve", "--agent", "a", "--needs-context", "lots"], "--needs-context <tokens>"],
    [["portfolio", "resolve", "--agent", "a", "--retry-after", "soon"], "--retry-after <seconds>"],
  ])("%j is refused naming the flag", async (args, flag) => {
    const r = await lazarus([...args, "--state-dir", state]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`option '${flag}' argument`);
  });

  it("gives a member that ignores SIGTERM the whole --stop-timeout 2s (not NaN, which was SIGKILL at once)", async () => {
    const st = tempDir("lazarus-state-");
    const cfg = configDir({
      "cells.d/c.yaml": cellYaml({
        name: "stubborn",
        members: [{ identity: "agent:mule", command: ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"] }],
      }),
    });
    dirs.push(st, cfg);
    const args = ["--config", cfg, "--state-dir", st];
    expect((await lazarus(["apply", ...args])).exitCode).toBe(0);
    const m = readRecord(path.join(st, "cells", "stubborn")).members[0]!;
    await waitFor(() => isAlive(m.pid, m.startTime));
    await new Promise((r) => setTimeout(r, 300)); // let the shell install its trap
    const started = Date.now();
    const r = await lazarus([
      "apply",
      "--stop-timeout",
      "2s",
      ...args,
      "--now",
      new Date(Date.now() + 5 * 3_600_000).toISOString(),
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain("ttl 4h expired");
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    expect(isAlive(m.pid, m.startTime)).toBe(false);
  });
});
