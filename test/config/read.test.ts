// Reading cells.d/ and portfolios/ from real files that are not what they seem: each read problem
// quarantines that file alone, with a diagnostic naming it, and never blocks.
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import { RealDirs, readRegularFileSync } from "../../src/config/read.js";
import { formatDiagnostic } from "../../src/config/diagnostics.js";
import { cellYaml, cleanup, configDir, tempDir } from "../helpers.js";

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));
afterEach(() => {
  delete process.env.LAZARUS_MAX_FILE_SIZE;
});

// A config dir with a good cell in good.yaml, and `make` adding the bad entry cells.d/bad.yaml.
function withBad(make: (bad: string, dir: string) => void): string {
  const dir = configDir({ "cells.d/good.yaml": cellYaml({ name: "good" }) });
  dirs.push(dir);
  make(path.join(dir, "cells.d", "bad.yaml"), dir);
  return dir;
}

// loadConfig, failing the test instead of hanging when a read blocks.
async function load(dir: string) {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error("loadConfig blocked")), 5000)),
  );
  try {
    return await Promise.race([loadConfig(dir), hang]);
  } finally {
    clearTimeout(timer);
  }
}

async function expectQuarantined(dir: string, message: RegExp | string): Promise<void> {
  const { desired, diagnostics } = await load(dir);
  expect([...desired.cells.keys()]).toEqual(["good"]);
  expect(desired.quarantined.map((q) => q.file)).toEqual(["cells.d/bad.yaml"]);
  const lines = diagnostics.map(formatDiagnostic);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^cells\.d\/bad\.yaml(:\d+:\d+)?: error: /);
  if (typeof message === "string") expect(lines[0]).toContain(message);
  else expect(lines[0]).toMatch(message);
}

describe("reading cells.d", () => {
  it("quarantines a FIFO without blocking on it", async () => {
    const dir = withBad((bad) => execFileSync("mkfifo", [bad]));
    await expectQuarantined(
      dir,
      "cannot read this file: it is a FIFO (named pipe) (only regular files are read: replace it with a regular file)",
    );
  });

  it("quarantines a directory named like a YAML file", async () => {
    await expectQuarantined(
      withBad((bad) => mkdirSync(bad)),
      "cannot read this file: it is a directory",
    );
  });

  it("quarantines a dangling symlink, and a symlink loop", async () => {
    await expectQuarantined(
      withBad((bad) => symlinkSync("/nonexistent/target.yaml", bad)),
      "it is a dangling symbolic link",
    );
    await expectQuarantined(
      withBad((bad) => symlinkSync(bad, bad)),
      "it is a symbolic link loop",
    );
  });

  it("refuses symlinks to /dev/zero and /proc/self/mem", async () => {
    await expectQuarantined(
      withBad((bad) => symlinkSync("/dev/zero", bad)),
      /it is a symbolic link to \/dev\/zero, outside the config dir/,
    );
    await expectQuarantined(
      withBad((bad) => symlinkSync("/proc/self/mem", bad)),
      /it is a symbolic link to \/proc\/\d+\/mem, outside the config dir/,
    );
  });

  it("follows a symlink to a regular file inside the config dir, and no other", async () => {
    const dir = withBad((bad, d) => {
      mkdirSync(path.join(d, "shared"));
      writeFileSync(path.join(d, "shared", "cell.yaml"), cellYaml({ name: "linked" }));
      symlinkSync("../shared/cell.yaml", bad);
    });
    const { desired, diagnostics } = await load(dir);
    expect(diagnostics).toEqual([]);
    expect([...desired.cells.keys()].sort()).toEqual(["good", "linked"]);
    const outside = tempDir();
    dirs.push(outside);
    writeFileSync(path.join(outside, "cell.yaml"), cellYaml({ name: "outside" }));
    await expectQuarantined(
      withBad((bad) => symlinkSync(path.join(outside, "cell.yaml"), bad)),
      "outside the config dir",
    );
    await expectQuarantined(
      withBad((bad, d) => {
        execFileSync("mkfifo", [path.join(d, "pipe")]);
        symlinkSync("../pipe", bad);
      }),
      "it is a symbolic link to a FIFO (named pipe)",
    );
  });

  it("reads a file listed as regular that became a symlink since as a symlink: followed inside, refused outside", () => {
    const dir = withBad(() => undefined);
    const file = path.join(dir, "cells.d", "good.yaml");
    const outside = tempDir();
    dirs.push(outside);
    writeFileSync(path.join(outside, "cell.yaml"), cellYaml({ name: "outside" }));
    writeFileSync(path.join(dir, "inside.yaml"), cellYaml({ name: "inside" }));
    rmSync(file);
    symlinkSync("../inside.yaml", file);
    const inside = readRegularFileSync(file, 1 << 20, dir, new RealDirs(), true);
    expect(inside.kind === "bytes" && inside.bytes.toString()).toContain("name: inside");
    rmSync(file);
    symlinkSync(path.join(outside, "cell.yaml"), file);
    const out = readRegularFileSync(file, 1 << 20, dir, new RealDirs(), true);
    expect(out.kind === "problem" && out.problem.problem).toMatch(
      /^it is a symbolic link to .*, outside the config dir$/,
    );
  });

  it("reads a file whole whatever its size against its buffer, up to the cap", () => {
    const dir = withBad(() => undefined);
    for (const size of [0, 1, 4095, 4096, 65536, 65537, 200_000]) {
      const file = path.join(dir, `f-${size}`);
      writeFileSync(file, "x".repeat(size));
      for (const listed of [false, true]) {
        const r = readRegularFileSync(file, 1 << 20, dir, new RealDirs(), listed);
        expect(r.kind === "bytes" && r.bytes.length).toBe(size);
      }
      const capped = readRegularFileSync(file, size - 1, dir);
      if (size > 0) expect(capped.kind).toBe("problem");
    }
    // A file whose fstat says 0 bytes but that has more (a /proc file) is read to its end.
    const proc = readRegularFileSync("/proc/self/status", 1 << 20);
    expect(proc.kind === "bytes" && proc.bytes.toString()).toMatch(/^Name:[\s\S]*\nPid:/);
  });

  it("never reads through cells.d or portfolios linked out of the config dir", async () => {
    const outside = tempDir();
    dirs.push(outside);
    writeFileSync(path.join(outside, "host.yaml"), cellYaml({ name: "from-host" }));
    writeFileSync(
      path.join(outside, "p.yaml"),
      "apiVersion: lazarus/v1\nkind: Portfolio\nmetadata:\n  name: from-host\nspec:\n  models: []\n",
    );
    const dir = tempDir();
    dirs.push(dir);
    symlinkSync(outside, path.join(dir, "cells.d"));
    symlinkSync(outside, path.join(dir, "portfolios"));
    const { desired, diagnostics } = await load(dir);
    expect([...desired.cells.keys()]).toEqual([]);
    expect([...desired.portfolios.keys()]).toEqual([]);
    const lines = diagnostics.map(formatDiagnostic);
    expect(lines.some((l) => /^cells\.d\/host\.yaml: error: .*outside the config dir/.test(l))).toBe(true);
    // A link to a directory inside the config dir is still read.
    const inside = configDir({});
    dirs.push(inside);
    mkdirSync(path.join(inside, "real"));
    writeFileSync(path.join(inside, "real", "a.yaml"), cellYaml({ name: "inside" }));
    rmSync(path.join(inside, "cells.d"), { recursive: true });
    symlinkSync("real", path.join(inside, "cells.d"));
    expect([...(await load(inside)).desired.cells.keys()]).toEqual(["inside"]);
  });

  it("refuses a file over the size cap before reading it, and takes a raised cap", async () => {
    const dir = withBad((bad) => writeFileSync(bad, `${cellYaml({ name: "big" })}# ${"x".repeat(2 * 1024 * 1024)}\n`));
    await expectQuarantined(
      dir,
      /it is \d+ bytes, over the 1048576-byte limit \(split it into smaller files, or raise the limit with --max-file-size or LAZARUS_MAX_FILE_SIZE\)/,
    );
    process.env.LAZARUS_MAX_FILE_SIZE = "4Mi";
    const { desired, diagnostics } = await load(dir);
    expect(diagnostics).toEqual([]);
    expect([...desired.cells.keys()].sort()).toEqual(["big", "good"]);
  });

  it("decodes strict UTF-8: invalid bytes, UTF-16 and NUL are errors at their line and column", async () => {
    const text = cellYaml({ name: "bad" });
    const [before, after] = text.split("repo#1") as [string, string];
    const invalid = Buffer.concat([Buffer.from(before), Buffer.from([0xc3, 0x28]), Buffer.from(after)]); // é cut short
    await expectQuarantined(
      withBad((bad) => writeFileSync(bad, invalid)),
      "cells.d/bad.yaml:6:16: error: invalid UTF-8 (a byte sequence that is not a character) (save the file as UTF-8)",
    );
    const lone = Buffer.concat([
      Buffer.from(text.replace("owner: human:alexander", "owner: human:aléxander")),
      Buffer.from([0xff]),
    ]);
    await expectQuarantined(
      withBad((bad) => writeFileSync(bad, lone)),
      /^cells\.d\/bad\.yaml:12:1: error: invalid UTF-8/,
    );
    await expectQuarantined(
      withBad((bad) => writeFileSync(bad, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, "utf16le")]))),
      "cells.d/bad.yaml:1:1: error: the file is UTF-16",
    );
    await expectQuarantined(
      withBad((bad) => writeFileSync(bad, text.replace("owner: human:alexander", "owner: human:alex\u0000ander"))),
      "cells.d/bad.yaml:7:20: error: a NUL byte (U+0000)",
    );
  });

  it("keeps an encoded U+FFFD, which is valid UTF-8", async () => {
    const dir = withBad((bad) =>
      writeFileSync(bad, cellYaml({ name: "bad" }).replace("project: Org/repo#1", 'project: "Org/repo\ufffd"')),
    );
    const { desired, diagnostics } = await load(dir);
    expect(diagnostics).toEqual([]);
    expect(desired.cells.get("bad")?.project).toBe("Org/repo\ufffd");
  });

  it("says what is wrong when cells.d is a file, and changes nothing", async () => {
    const dir = tempDir();
    dirs.push(dir);
    writeFileSync(path.join(dir, "cells.d"), "not a dir\n");
    await expect(load(dir)).rejects.toThrow(
      /^cells\.d is not a directory \(in .*\); make cells\.d\/ a directory holding the \*\.yaml files; nothing was changed$/,
    );
  });

  it("holds the portfolios when portfolios is a file, and still loads every cell", async () => {
    const dir = configDir({ "cells.d/good.yaml": cellYaml({ name: "good" }) });
    dirs.push(dir);
    rmSync(path.join(dir, "portfolios"), { recursive: true });
    writeFileSync(path.join(dir, "portfolios"), "x\n");
    const { desired, diagnostics } = await load(dir);
    expect([...desired.cells.keys()]).toEqual(["good"]);
    expect(desired.portfoliosHeld).toBe(true);
    expect(diagnostics.map(formatDiagnostic)).toEqual([
      "portfolios: error: portfolios is not a directory; the portfolios are held as they are (make portfolios/ a directory holding the *.yaml files)",
    ]);
  });

  it("quarantines an unreadable portfolio file alone", async () => {
    const dir = configDir({ "cells.d/good.yaml": cellYaml({ name: "good" }) });
    dirs.push(dir);
    execFileSync("mkfifo", [path.join(dir, "portfolios", "p.yaml")]);
    const { desired, diagnostics } = await load(dir);
    expect([...desired.cells.keys()]).toEqual(["good"]);
    expect(desired.portfoliosHeld).toBe(true);
    expect(diagnostics.map(formatDiagnostic)[0]).toMatch(
      /^portfolios\/p\.yaml: error: cannot read this file: it is a FIFO/,
    );
  });
});

describe("a file that declares nothing", () => {
  it.each([
    ["empty", ""],
    ["whitespace", "  \n\n\t\n"],
    ["comments only", "# all cells moved elsewhere\n# (not really)\n"],
    ["--- only", "---\n"],
    ["several empty documents", "---\n---\n...\n"],
  ])("(%s) holds its previous cells with a warning", async (_what, text) => {
    const dir = withBad((bad) => writeFileSync(bad, text));
    const { desired, diagnostics } = await load(dir);
    expect([...desired.cells.keys()]).toEqual(["good"]);
    expect(desired.quarantined).toEqual([{ file: "cells.d/bad.yaml", names: [] }]);
    expect(diagnostics.map(formatDiagnostic)).toEqual([
      "cells.d/bad.yaml:1:1: warning: this file declares no cells; the cells it declared before are held as they are (delete the file to close them)",
    ]);
  });
});
