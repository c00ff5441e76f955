// The shell commands of the docs, run. Every ```sh block of README.md and docs/ follows a marker:
//   <!-- docs-test: run -->                 run with bash -euo pipefail;
//   <!-- docs-test: run while npm start --> run while the daemon of `npm start` runs,
// in order, file by file, in a fresh copy of the repo's example config (cells.d/, portfolios/,
// examples/, schemas/, package.json; dist/ and node_modules/ linked) with `lazarus` on the PATH,
// and CONFIG (the copy) and STATE (a state dir in it) set for docs/operations.md;
//   <!-- docs-test: check (WHY) -->         not runnable here (WHY says why, and where it is run
// instead): the block must parse (bash -n), and each `lazarus` command in it must exist and take
// every --option given to it (from that command's --help);
//   <!-- docs-test: same as PATH -->        an example file shown whole: the block is that file;
//   <!-- docs-test: host setup, run by .ci/run --> a host's setup, which .ci/run itself runs by
// extracting the block from the doc (so the doc and CI cannot drift apart).
// The copy leaves out cells.d/review-sandboxed.yaml: the sandbox backend needs a uid range of its
// own (test/sandbox/), and these blocks must run anywhere the suite runs.
import { stopGateway } from "../src/gateway/supervise.js";
import { chmodSync, cpSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa, type ResultPromise } from "execa";
import { describe, expect, it } from "vitest";
import { CLI, ROOT, cleanup, tempDir, waitFor } from "./helpers.js";

type Kind = "run" | "daemon" | "check" | "same" | "host";

interface Block {
  file: string;
  line: number; // 1-based line of the opening fence
  kind: Kind;
  arg: string; // check: why; same: the file
  daemon: boolean;
  code: string;
}

const MARKER =
  /^<!-- docs-test: (run|run while npm start|check \((.+)\)|same as (\S+)|host setup, run by \.ci\/run) -->$/;
const FENCE = /^```(sh|bash)$/;

export function runnableBlocks(file: string, text: string): Block[] {
  const lines = text.split("\n");
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = MARKER.exec(lines[i] as string);
    if (!m) {
      if (FENCE.test(lines[i] as string))
        throw new Error(
          `${file}:${i + 1}: a \`\`\`sh block without a docs-test marker on the line before it (see test/docs-commands.test.ts)`,
        );
      continue;
    }
    if (!FENCE.test(lines[i + 1] ?? ""))
      throw new Error(`${file}:${i + 1}: a docs-test marker must be followed by a \`\`\`sh block`);
    const end = lines.indexOf("```", i + 2);
    if (end < 0) throw new Error(`${file}:${i + 2}: the sh block is not closed`);
    const word = m[1] as string;
    const kind: Kind =
      word === "run"
        ? "run"
        : word === "run while npm start"
          ? "daemon"
          : word.startsWith("check")
            ? "check"
            : word.startsWith("same")
              ? "same"
              : "host";
    out.push({
      file,
      line: i + 2,
      kind,
      arg: m[2] ?? m[3] ?? "",
      daemon: kind === "daemon",
      code: lines.slice(i + 2, end).join("\n"),
    });
    i = end;
  }
  return out;
}

const docs = [
  "README.md",
  ...readdirSync(path.join(ROOT, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
];
const all = docs.map((f) => ({ file: f, blocks: runnableBlocks(f, readFileSync(path.join(ROOT, f), "utf8")) }));
const byFile = all
  .map((d) => ({ file: d.file, blocks: d.blocks.filter((b) => b.kind === "run" || b.kind === "daemon") }))
  .filter((d) => d.blocks.length > 0);

// The `lazarus …` command lines of a block, comments and continuations folded: each as its words.
export function lazarusCommands(code: string): string[][] {
  const out: string[][] = [];
  const text = code.replace(/\\\n\s*/g, " ");
  for (const raw of text.split("\n")) {
    const line = raw.replace(/(^|\s)#.*$/, "");
    for (const m of line.matchAll(/(?:^|[\s;&|(])lazarus\s+([^;&|<>)]*)/g)) {
      const words = (m[1] as string).trim().split(/\s+/).filter(Boolean);
      const dd = words.indexOf("--");
      out.push(dd < 0 ? words : words.slice(0, dd));
    }
  }
  return out;
}

const helpCache = new Map<string, { usage: string; text: string } | undefined>();
async function helpOf(words: string[]): Promise<{ usage: string; text: string } | undefined> {
  const key = words.join(" ");
  if (!helpCache.has(key)) {
    const r = await execa(process.execPath, [CLI, ...words, "--help"], { reject: false, env: { NO_COLOR: "1" } });
    const usage = (/^Usage: lazarus ((?:[a-z][a-z-]* ?)*)/.exec(r.stdout)?.[1] ?? "").trim();
    helpCache.set(key, r.exitCode === 0 && usage === key ? { usage, text: r.stdout } : undefined);
  }
  return helpCache.get(key);
}

// What is wrong with one `lazarus` command line of a doc (undefined: nothing).
async function checkCommand(words: string[]): Promise<string | undefined> {
  const bare = words.filter((w, i) => i < 2 && /^[a-z][a-z-]*$/.test(w));
  const help = (bare.length === 2 ? await helpOf(bare) : undefined) ?? (await helpOf(bare.slice(0, 1)));
  if (!help) return `\`lazarus ${words.join(" ")}\`: no such command`;
  for (const w of words) {
    const opt = /^(--[a-z][a-z0-9-]*)/.exec(w)?.[1];
    if (opt && !new RegExp(`(^|[\\s,])${opt}([\\s=,]|$)`, "m").test(help.text))
      return `\`lazarus ${words.join(" ")}\`: lazarus ${help.usage} has no option ${opt}`;
  }
  return undefined;
}

function sandboxCopy(): string {
  const dir = tempDir("lazarus-docs-run-");
  for (const d of ["cells.d", "portfolios", "examples", "schemas"])
    cpSync(path.join(ROOT, d), path.join(dir, d), { recursive: true });
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
    expect(() => runnableBlocks("x.md", "<!-- docs-test: run -->\n```yaml\na: 1\n```\n")).toThrow(
      /x\.md:1: a docs-test marker must be followed by a ```sh block/,
    );
  });

  it("the convention can fail: an sh block without a marker is an error", () => {
    expect(() => runnableBlocks("x.md", "text\n```sh\nlazarus plan\n```\n")).toThrow(
      /x\.md:2: a ```sh block without a docs-test marker/,
    );
  });

  it("the check can fail: an unknown command or option is reported", async () => {
    expect(
      lazarusCommands(
        'sudo lazarus service install --force --config "$CONFIG" \\\n  --state-dir x  # --nope\nx=$(lazarus plan --json) && lazarus logs a -- --not-ours',
      ),
    ).toEqual([
      ["service", "install", "--force", "--config", '"$CONFIG"', "--state-dir", "x"],
      ["plan", "--json"],
      ["logs", "a"],
    ]);
    expect(await checkCommand(["service", "install", "--force"])).toBeUndefined();
    expect(await checkCommand(["service", "install", "--forse"])).toMatch(
      /lazarus service install has no option --forse/,
    );
    expect(await checkCommand(["servise", "install"])).toMatch(/no such command/);
  });

  for (const { file, blocks } of all) {
    for (const b of blocks.filter((x) => x.kind === "check")) {
      it(`${file}:${b.line}: parses, and its lazarus commands and options exist (${b.arg})`, async () => {
        const syntax = await execa("bash", ["-n", "-c", b.code], { reject: false });
        expect(syntax.exitCode, `${file}:${b.line}: ${syntax.stderr}`).toBe(0);
        const problems: string[] = [];
        for (const words of lazarusCommands(b.code)) {
          const p = await checkCommand(words);
          if (p) problems.push(`${file}:${b.line}: ${p}`);
        }
        expect(problems).toEqual([]);
      });
    }
    for (const b of blocks.filter((x) => x.kind === "same")) {
      it(`${file}:${b.line}: is ${b.arg}, as it is in the repo`, () => {
        expect(`${b.code}\n`).toBe(readFileSync(path.join(ROOT, b.arg), "utf8"));
      });
    }
    for (const b of blocks.filter((x) => x.kind === "host")) {
      it(`${file}:${b.line}: a host setup .ci/run runs from the doc itself`, () => {
        expect(readFileSync(path.join(ROOT, ".ci", "run"), "utf8")).toContain(`docs-block "${file}" "host setup"`);
      });
    }
  }

  for (const { file, blocks } of byFile) {
    it(`${file}: every runnable block exits 0`, { timeout: 180_000 }, async () => {
      const dir = sandboxCopy();
      const env = {
        PATH: `${path.join(dir, ".bin")}:${process.env.PATH ?? ""}`,
        HOME: dir,
        NO_COLOR: "1",
        LAZARUS_STATE_DIR: "",
        CONFIG: dir,
        STATE: path.join(dir, ".lazarus-state"),
      };
      let daemon: ResultPromise | undefined;
      let daemonLog = "";
      try {
        for (const b of blocks) {
          if (b.daemon && !daemon) {
            // What `npm start` runs, exec'd so that our SIGTERM reaches the daemon itself (npm
            // would not pass it on to its script's shell).
            const start = (
              JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")) as { scripts: { start: string } }
            ).scripts.start;
            daemon = execa("bash", ["-c", `exec ${start}`], { cwd: dir, env, reject: false });
            daemon.stdout?.on("data", (d: Buffer) => (daemonLog += d.toString()));
            daemon.stderr?.on("data", (d: Buffer) => (daemonLog += d.toString()));
            await waitFor(() => daemonLog.includes('"msg":"watching"') || daemon?.exitCode !== null, 60_000);
            expect(daemonLog).toContain('"msg":"watching"');
          }
          const r = await execa("bash", ["--norc", "--noprofile", "-euo", "pipefail", "-c", b.code], {
            cwd: dir,
            env,
            reject: false,
            all: true,
          });
          expect(r.exitCode, `${b.file}:${b.line}: the block failed (exit ${r.exitCode}):\n${r.all}`).toBe(0);
        }
      } finally {
        if (daemon) {
          daemon.kill("SIGTERM"); // the daemon stops, leaving the members running (cleanup stops those)
          const r = await daemon;
          expect(r.exitCode, daemonLog).toBe(0);
        }
        await stopGateway(env.STATE); // the model gateway the example cells started, by its recorded pid
        cleanup(dir); // stops the example members, whose CELL_HOME is under the copy
      }
    });
  }
});
