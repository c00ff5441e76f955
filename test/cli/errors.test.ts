// How failures read: an unexpected error is one "internal error" line (the stack only with --debug
// or LAZARUS_DEBUG=1); a file named on the command line is named in its errors.
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, cleanup, configDir, lazarus, tempDir } from "../helpers.js";

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));
const scratch = tempDir();
dirs.push(scratch);

describe("an error Lazarus does not know", () => {
  // A state dir that is a regular file makes the file system fail in a way no rule anticipates.
  const stateFile = path.join(scratch, "not-a-dir");
  writeFileSync(stateFile, "x\n");

  it("is one line: internal error, what failed, and how to see the stack; exit 1", async () => {
    const r = await lazarus(["status", "--state-dir", stateFile]);
    expect(r.exitCode).toBe(1);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^internal error: ENOTDIR: not a directory, open '.*not-a-dir\/.*' \(run with --debug for the stack\)$/,
    );
  });

  it.each([
    ["--debug", ["--debug", "status", "--state-dir", stateFile], {}],
    ["LAZARUS_DEBUG=1", ["status", "--state-dir", stateFile], { LAZARUS_DEBUG: "1" }],
  ])("shows the stack with %s", async (_how, args, env) => {
    const r = await lazarus(args, { env });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^internal error: ENOTDIR/);
    expect(r.stderr).toMatch(/^\s+at /m);
  });

  it("leaves a known error as one error line", async () => {
    const r = await lazarus(["validate", "--config", scratch]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^error: no cells\.d\/ directory in /)]);
  });
});

describe("a reader that went away", () => {
  // `lazarus logs CELL | head -n 1`: the pipe's reader is gone before Lazarus has written it all.
  it("ends the command quietly, exit 0, never an internal error", async () => {
    const child = spawn(process.execPath, [CLI, "completion", "bash"], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.destroy(); // closed before the first write: that write gets EPIPE
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => child.on("close", (c) => r(c)));
    expect(stderr).toBe("");
    expect(code).toBe(0);
  });
});

describe("portfolio import FILE", () => {
  const config = configDir({});
  dirs.push(config);
  const legacy = (name: string, text: string | Buffer): string => {
    const file = path.join(scratch, name);
    writeFileSync(file, text);
    return file;
  };

  it.each([
    ["a missing file", () => path.join(scratch, "missing.yaml"), /no such file/],
    [
      "a directory",
      () => {
        const d = path.join(scratch, "dir.yaml");
        mkdirSync(d);
        return d;
      },
      /cannot read the legacy file: it is a directory/,
    ],
    [
      "a FIFO",
      () => {
        const f = path.join(scratch, "fifo.yaml");
        execFileSync("mkfifo", [f]);
        return f;
      },
      /cannot read the legacy file: it is a FIFO/,
    ],
    ["invalid YAML", () => legacy("bad.yaml", "agents: {a: [\n"), /not valid YAML/],
    [
      "the wrong shape",
      () => legacy("shape.yaml", "agents:\n  allegro: {fallbacks: []}\n"),
      /agents\.allegro: expected primary/,
    ],
    ["invalid UTF-8", () => legacy("latin1.yaml", Buffer.from([0x61, 0x3a, 0x20, 0xe9, 0x0a])), /:1:4: invalid UTF-8/],
  ])("names FILE when it is %s", async (_what, make, message) => {
    const file = make();
    const r = await lazarus(["portfolio", "import", file, "--config", config]);
    expect(r.exitCode).toBe(1);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`error: ${file}`);
    expect(lines[0]).toMatch(message);
  });
});
