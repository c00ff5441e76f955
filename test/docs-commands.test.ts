// The shell commands of the docs, run. A ```sh block right after a line
//   <!-- docs-test: run -->                 is run with bash -euo pipefail;
//   <!-- docs-test: run while npm start --> is run while the daemon of `npm start` runs,
// in order, file by file, in a fresh copy of the repo's example config (cells.d/, portfolios/,
// examples/, schemas/, package.json; dist/ and node_modules/ linked) with `lazarus` on the PATH.
// The copy leaves out cells.d/review-sandboxed.yaml: the sandbox backend needs a uid range of its
// own (test/sandbox/), and these blocks must run anywhere the suite runs.
import { chmodSync, cpSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa, type ResultPromise } from "execa";
import { describe, expect, it } from "vitest";
import { CLI, ROOT, cleanup, tempDir, waitFor } from "./helpers.js";

interface Block {
  file: string;
  line: number; // 1-based line of the opening fence
  daemon: boolean;
  code: string;
}

const MARKER = /^<!-- docs-test: (run|run while npm start) -->$/;

export function runnableBlocks(file: string, text: string): Block[] {
  const lines = text.split("\n");
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = MARKER.exec(lines[i] as string);
    if (!m) continue;
    if (lines[i + 1] !== "```sh") throw new Error(`${file}:${i + 1}: a docs-test marker must be followed by a \`\`\`sh block`);
    const end = lines.indexOf("```", i + 2);
    if (end < 0) throw new Error(`${file}:${i + 2}: the sh block is not closed`);
    out.push({ file, line: i + 2, daemon: m[1] !== "run", code: lines.slice(i + 2, end).join("\n") });
  }
  return out;
}

const docs = ["README.md", ...readdirSync(path.join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];
const byFile = docs.map((f) => ({ file: f, blocks: runnableBlocks(f, readFileSync(path.join(ROOT, f), "utf8")) })).filter((d) => d.blocks.length > 0);

function sandboxCopy(): string {
  const dir = tempDir("lazarus-docs-run-");
  for (const d of ["cells.d", "portfolios", "examples", "schemas"]) cpSync(path.join(ROOT, d), path.join(dir, d), { recursive: true });
  rmSync(path.join(dir, "cells.d", "review-sandboxed.yaml"));
  writeFileSync(path.join(dir, "package.json"), readFileSync(path.join(ROOT, "package.json")));
  symlinkSync(path.join(ROOT, "dist"), path.join(dir, "dist"));
  symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
  mkdirSync(path.join(dir, ".bin"));
  writeFileSync(path.join(dir, ".bin", "lazarus"), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
  chmodSync(path.join(dir, ".bin", "lazarus"), 0o755);
  return dir;
}

describe("docs commands", () => {
  it("the README's quick start and docs/cli.md have runnable blocks", () => {
    expect(byFile.map((d) => d.file)).toEqual(expect.arrayContaining(["README.md", "docs/cli.md"]));
    expect(byFile.find((d) => d.file === "README.md")?.blocks.some((b) => b.daemon)).toBe(true);
  });

  it("the convention can fail: a marker without an sh block is an error", () => {
    expect(() => runnableBlocks("x.md", "<!-- docs-test: run -->\n```yaml\na: 1\n```\n")).toThrow(/x\.md:1: a docs-test marker must be followed by a ```sh block/);
  });

  for (const { file, blocks } of byFile) {
    it(`${file}: every runnable block exits 0`, { timeout: 180_000 }, async () => {
      const dir = sandboxCopy();
      const env = { PATH: `${path.join(dir, ".bin")}:${process.env.PATH ?? ""}`, HOME: dir, NO_COLOR: "1", LAZARUS_STATE_DIR: "" };
      let daemon: ResultPromise | undefined;
      let daemonLog = "";
      try {
        for (const b of blocks) {
          if (b.daemon && !daemon) {
            // What `npm start` runs, exec'd so that our SIGTERM reaches the daemon itself (npm
            // would not pass it on to its script's shell).
            const start = (JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")) as { scripts: { start: string } }).scripts.start;
            daemon = execa("bash", ["-c", `exec ${start}`], { cwd: dir, env, reject: false });
            daemon.stdout?.on("data", (d: Buffer) => (daemonLog += d.toString()));
            daemon.stderr?.on("data", (d: Buffer) => (daemonLog += d.toString()));
            await waitFor(() => daemonLog.includes('"msg":"watching"') || daemon?.exitCode !== null, 60_000);
            expect(daemonLog).toContain('"msg":"watching"');
          }
          const r = await execa("bash", ["--norc", "--noprofile", "-euo", "pipefail", "-c", b.code], { cwd: dir, env, reject: false, all: true });
          expect(r.exitCode, `${b.file}:${b.line}: the block failed (exit ${r.exitCode}):\n${r.all}`).toBe(0);
        }
      } finally {
        if (daemon) {
          daemon.kill("SIGTERM"); // the daemon stops, leaving the members running (cleanup stops those)
          const r = await daemon;
          expect(r.exitCode, daemonLog).toBe(0);
        }
        cleanup(dir); // stops the example members, whose CELL_HOME is under the copy
      }
    });
  }
});
