// The log pump on its own (dist/backends/log-pump.js), fed through its stdin: a large burst stays
// within maxSize × (keep + 1), a partial last line is kept, a long line is cut into records that fit,
// keep 0 empties the file, and rotation never writes through a planted link.
import { spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, tempDir } from "../helpers.js";
import { SPAWNER_PL } from "../../src/backends/spawner.js";
import { which } from "../../src/util/which.js";

// Both pumps on the same cases: node with dist/backends/log-pump.js (the fallback start path's),
// and the Perl one of spawner.pl (which the spawner runs in a fork of itself; `--pump` runs it
// alone). .ci/run installs perl.
const NODE_PUMP = path.join(ROOT, "dist", "backends", "log-pump.js");
const perl = which("perl", process.env.PATH);
const PUMPS: [string, string[] | undefined][] = [
  ["node", existsSync(NODE_PUMP) ? [process.execPath, NODE_PUMP] : undefined],
  ["perl", perl ? [perl, SPAWNER_PL, "--pump"] : undefined],
];
let PUMP: string[] = [];
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// Run the pump on dir/m.log with these limits, write the chunks into its stdin, wait for it to end.
async function pump(maxBytes: number, keep: number, chunks: (Buffer | string)[]): Promise<string> {
  const dir = tempDir("lazarus-pump-");
  dirs.push(dir);
  const file = path.join(dir, "m.log");
  const fd = openSync(file, "a", 0o640);
  const child = spawn(PUMP[0] as string, [...PUMP.slice(1), file, String(maxBytes), String(keep)], {
    stdio: ["pipe", fd, "inherit"],
  });
  closeSync(fd);
  const input = child.stdin as NonNullable<typeof child.stdin>;
  for (const c of chunks) if (!input.write(c)) await new Promise((r) => input.once("drain", r));
  input.end();
  const code = await new Promise<number | null>((r) => child.once("exit", r));
  expect(code).toBe(0);
  return dir;
}

const RECORD = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z /;
const files = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.startsWith("m.log"))
    .sort();
const text = (dir: string, f: string) => readFileSync(path.join(dir, f), "utf8");

describe.each(PUMPS)("log pump (%s)", (_kind, cmd) => {
  if (!cmd) return it.skip("not available here", () => {});
  beforeAll(() => {
    PUMP = cmd; // the tests of this block run this pump
  });
  it("keeps a 64 MiB burst within maxSize × (keep + 1), newest last, every record stamped and whole", async () => {
    const line = `${"z".repeat(1023)}\n`;
    const chunk = Buffer.from(line.repeat(1024)); // 1 MiB
    const dir = await pump(256 * 1024, 2, [...Array.from({ length: 64 }, () => chunk), "the-end\n"]);
    expect(files(dir)).toEqual(["m.log", "m.log.1", "m.log.2"]);
    for (const f of files(dir)) expect(statSync(path.join(dir, f)).size).toBeLessThanOrEqual(256 * 1024);
    for (const f of files(dir))
      for (const l of text(dir, f).trimEnd().split("\n"))
        expect(l).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z (z{1023}|the-end)$/);
    expect(text(dir, "m.log").trimEnd().split("\n").pop()).toMatch(/ the-end$/);
  });

  it("writes a last line without a newline, and cuts a long line into records that fit", async () => {
    const dir = await pump(16 * 1024, 1, ["a".repeat(20_000), "\n", "no-newline-at-end"]);
    const all = [...files(dir)]
      .reverse()
      .map((f) => text(dir, f))
      .join("");
    const lines = all.trimEnd().split("\n");
    for (const l of lines) expect(l).toMatch(RECORD);
    expect(lines.map((l) => l.replace(RECORD, "")).join("")).toBe(`${"a".repeat(20_000)}no-newline-at-end`); // both files kept: nothing lost
    expect(lines.pop()).toMatch(/ no-newline-at-end$/);
    for (const f of files(dir)) expect(statSync(path.join(dir, f)).size).toBeLessThanOrEqual(16 * 1024);
  });

  it("empties the file with keep 0", async () => {
    const dir = await pump(16 * 1024, 0, [`${"q".repeat(99)}\n`.repeat(1000), "last\n"]);
    expect(files(dir)).toEqual(["m.log"]);
    expect(statSync(path.join(dir, "m.log")).size).toBeLessThanOrEqual(16 * 1024);
    expect(text(dir, "m.log")).toMatch(/ last\n$/);
  });

  it("replaces a planted link among the rotated files instead of writing through it", async () => {
    const outside = tempDir("lazarus-pump-outside-");
    dirs.push(outside);
    const target = path.join(outside, "precious");
    writeFileSync(target, "keep me");
    // The pump's dir is made by pump(); plant through a first run, then rotate again over the link.
    const dir = await pump(16 * 1024, 2, ["x\n"]);
    symlinkSync(target, path.join(dir, "m.log.1"));
    symlinkSync(target, path.join(dir, "m.log.2"));
    const fd = openSync(path.join(dir, "m.log"), "a");
    const child = spawn(PUMP[0] as string, [...PUMP.slice(1), path.join(dir, "m.log"), String(16 * 1024), "2"], {
      stdio: ["pipe", fd, "inherit"],
    });
    closeSync(fd);
    (child.stdin as NonNullable<typeof child.stdin>).end(`${"r".repeat(99)}\n`.repeat(400));
    await new Promise((r) => child.once("exit", r));
    expect(readFileSync(target, "utf8")).toBe("keep me");
    expect(files(dir)).toEqual(["m.log", "m.log.1", "m.log.2"]);
  });
});
