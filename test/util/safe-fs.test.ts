// Reading and writing member-writable files: no links followed, no blocking on FIFOs, regular
// files only, sizes capped, contents parsed defensively.
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { healthFile, readHealth } from "../../src/portfolio/health.js";
import { appendLine, writeJsonAtomic } from "../../src/util/fsx.js";
import { readUntrusted } from "../../src/util/safe-fs.js";
import { tempDir } from "../helpers.js";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const cell = () => {
  const d = tempDir("lazarus-cell-");
  dirs.push(d);
  mkdirSync(path.join(d, ".lazarus"));
  return d;
};
const line = (o: object) => `${JSON.stringify(o)}\n`;

describe("model health written by members", () => {
  it("ignores a linked health file, with the reason", async () => {
    const dir = cell();
    const outside = path.join(cell(), "elsewhere.jsonl");
    writeFileSync(outside, line({ time: "2030-01-01T00:00:00Z", model: "m", outcome: "auth" }));
    symlinkSync(outside, healthFile(dir));
    const why: string[] = [];
    expect(await readHealth(dir, (w) => why.push(w))).toEqual([]);
    expect(why.join()).toContain("is a symbolic link");
  });

  it("ignores a FIFO without waiting for a writer, and an oversized file", async () => {
    const dir = cell();
    await execa("mkfifo", [healthFile(dir)]);
    const why: string[] = [];
    expect(await readHealth(dir, (w) => why.push(w))).toEqual([]);
    expect(why.join()).toContain("FIFO");
    rmSync(healthFile(dir));
    writeFileSync(healthFile(dir), "x".repeat(1024 * 1024 + 1));
    expect(await readHealth(dir, (w) => why.push(w))).toEqual([]);
    expect(why.join()).toContain("more than the 1048576 allowed");
  });

  it("keeps only well-formed outcomes", async () => {
    const dir = cell();
    const good = { time: "2030-01-01T00:00:00Z", model: "m", outcome: "rate_limit", member: "agent:a" };
    writeFileSync(
      healthFile(dir),
      [
        line(good),
        "null\n",
        line({ time: "x", model: "m", outcome: "ok" }),
        line({ time: good.time, model: {}, outcome: "ok" }),
        line({ time: good.time, model: "m", outcome: "nonsense" }),
        '{"torn',
      ].join(""),
    );
    const why: string[] = [];
    expect(await readHealth(dir, (w) => why.push(w))).toEqual([
      { time: Date.parse(good.time), model: "m", outcome: "rate_limit", member: "agent:a" },
    ]);
    expect(why.join()).toContain("5 malformed lines ignored");
  });
});

describe("Lazarus's own writes", () => {
  it("never append through a link, nor block on a FIFO", async () => {
    const dir = cell();
    const target = path.join(cell(), "target");
    writeFileSync(target, "kept\n");
    symlinkSync(target, path.join(dir, "log"));
    await expect(appendLine(path.join(dir, "log"), "x")).rejects.toThrow(/refusing to write .*symbolic link/);
    await execa("mkfifo", [path.join(dir, "fifo")]);
    await expect(appendLine(path.join(dir, "fifo"), "x")).rejects.toThrow(/refusing to write/);
    expect(readFileSync(target, "utf8")).toBe("kept\n");
  });

  it("replace a planted link atomically instead of writing through it", async () => {
    const dir = cell();
    const target = path.join(cell(), "target");
    writeFileSync(target, "kept\n");
    symlinkSync(target, path.join(dir, "record.json"));
    await writeJsonAtomic(path.join(dir, "record.json"), { ok: true }, 0o600);
    expect(readFileSync(target, "utf8")).toBe("kept\n");
    expect(JSON.parse(readFileSync(path.join(dir, "record.json"), "utf8"))).toEqual({ ok: true });
  });

  it("read nothing through a linked directory between the cell and the file", async () => {
    const dir = cell();
    const other = cell();
    writeFileSync(path.join(other, ".lazarus", "x"), "secret");
    rmSync(path.join(dir, ".lazarus"), { recursive: true });
    symlinkSync(path.join(other, ".lazarus"), path.join(dir, ".lazarus"));
    expect(await readUntrusted(path.join(dir, ".lazarus", "x"), 100)).toMatchObject({ ok: true });
    expect(await readUntrusted(path.join(dir, ".lazarus", "x"), 100, dir)).toMatchObject({
      ok: false,
      reason: expect.stringContaining("not a directory"),
    });
  });
});

describe("reading untrusted files whole, within their cap", () => {
  it("reads a file whole whatever its size, past the first buffer, and refuses one over the cap", async () => {
    const dir = cell();
    for (const size of [0, 1, 4095, 4096, 4097, 100_000]) {
      const file = path.join(dir, `f${size}`);
      writeFileSync(file, "x".repeat(size));
      expect(await readUntrusted(file, 100_000)).toMatchObject({ ok: true, text: "x".repeat(size) });
    }
    expect(await readUntrusted(path.join(dir, "f100000"), 99_999)).toMatchObject({
      ok: false,
      missing: false,
      reason: "is 100000 bytes, more than the 99999 allowed",
    });
  });

  it("reads a file whose size says 0 (a /proc file) to its end, and cuts one that holds more than the cap", async () => {
    const whole = await readUntrusted("/proc/self/maps", 16 * 1024 * 1024);
    expect(whole.ok).toBe(true);
    const text = whole.ok ? whole.text : "";
    expect(text.length).toBeGreaterThan(4096); // more than the first buffer: it grew
    expect(text.split("\n")[0]).toBe(readFileSync("/proc/self/maps", "utf8").split("\n")[0]);
    expect(await readUntrusted("/proc/self/maps", 1000)).toMatchObject({
      ok: false,
      missing: false,
      reason: "grew past the 1000 bytes allowed",
    });
  });
});
