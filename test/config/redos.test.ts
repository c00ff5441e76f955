// Regular expressions applied to untrusted input (cells.d/, files a cell names, portfolios, host
// settings) must finish in one pass on any input: adversarial inputs of 100 KB to 1 MiB (runs of
// spaces, tabs, line breaks, separators, near-matches), each checked in a child process with a
// deadline. A regex that backtracks takes minutes on these, so the deadline is the failure signal
// (in-process, a blocked synchronous regex would only make the test slow, never fail it).
//
// Audit of every regex in src/ that sees such input (grep 'RegExp\|/.*[+*].*/' src). Rewritten,
// each tested here: the requirement line and its comment strip (runtime/python/check.ts), salvageNames
// (config/load.ts: \s* ran over line breaks), the scp-like git URL test (gitops/git.ts, used by
// cli/service.ts too) and the legacy portfolio label's dash trim (portfolio/legacy.ts). Linear as
// they are (anchored, or no two quantifiers can match the same run): the schema patterns, durations,
// quantities, RESERVED_ENV, CHECKPOINT_FILE, files.ts, decode.ts NOT_PRINTABLE, the exit-file and
// oom_kill parsers (observe.ts, remote/observe.ts), STAMP_RE and log names, member-git RISKY (a
// list of words), settings.ts (ranges, cgroup root, log keep), secrets.ts, digest-key.ts,
// remote/hosts.ts, flags.ts, events.ts, edit.ts (runs of spaces only, then a fixed character),
// split(/\s+/). Bounded by the input's length: TEMP_RE and the "~" and "/" trims (file names and
// tar entry paths Lazarus wrote, at most 255 or 4096 bytes); yaml-stream.ts's tag (a YAML tag holds
// no line break, so ".*$" succeeds at the first match).
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { MAX_REQUIREMENT_LINE, plainRequirement, requirementProblems } from "../../src/runtime/python/check.js";
import { salvageNames } from "../../src/config/load.js";
import { ROOT, cellYaml, cleanup, configDir, lazarus } from "../helpers.js";

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));

const DEADLINE_MS = 20_000; // the fixed code takes milliseconds; the old regexes took minutes
const KB = 1024;

// Run `body` (an async function body; it may import dist modules through `load`) in a child node
// and return what it returns; fails when it is still running at the deadline.
async function bounded(body: string): Promise<unknown> {
  const script = `const load = (m) => import(${JSON.stringify(`${ROOT}/dist/`)} + m);\nconst result = await (async () => {${body}})();\nprocess.stdout.write(JSON.stringify(result));`;
  const r = await execa("node", ["--input-type=module", "-e", script], {
    reject: false,
    timeout: DEADLINE_MS,
    killSignal: "SIGKILL",
  });
  expect(r.timedOut, `still running after ${DEADLINE_MS} ms: catastrophic backtracking`).toBe(false);
  expect(r.exitCode, String(r.stderr)).toBe(0);
  return JSON.parse(String(r.stdout));
}

// The requirement regex before it was made linear: the oracle for what a line may hold.
const OLD_NAME = String.raw`[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?`;
const OLD_SPEC = String.raw`(?:===|==|!=|~=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+`;
const OLD_REQUIREMENT = new RegExp(
  `^${OLD_NAME}${String.raw`(?:\s*\[\s*(?:${OLD_NAME}(?:\s*,\s*${OLD_NAME})*)?\s*\])?`}${String.raw`(?:\s*\(?\s*${OLD_SPEC}(?:\s*,\s*${OLD_SPEC})*\s*\)?)?`}${String.raw`(?:\s*;[^@\\]*)?`}$`,
);

describe("python requirements: linear on any line", () => {
  // Lines that are long runs where the old regex split blanks between adjacent \s*.
  const adversarial: [string, string, boolean][] = [
    ["name, spaces, junk", `"a" + " ".repeat(N) + "x"`, false],
    ["spec, spaces, junk", `"a==1" + " ".repeat(N) + "x"`, false],
    ["spec, tabs, junk", `"a >= 1" + "\\t".repeat(N) + "@"`, false],
    ["open extras, spaces", `"a[" + " ".repeat(N)`, false],
    ["spaces around a closing paren", `"a (==1" + " ".repeat(N / 2) + ")" + " ".repeat(N / 2) + "x"`, false],
    ["many specs, then a URL", `"a" + ",==1".repeat(N / 4).slice(1) + " @ x"`, false],
    ["many extras, unclosed", `"a[" + "b , ".repeat(N / 4)`, false],
    ["a long name, then a space", `"a".repeat(N) + "- "`, false],
    ["a long dotted version", `"a==" + "1.".repeat(N / 2) + " x"`, false],
    ["a long marker with an @ at the end", `"a; " + "x ".repeat(N / 2) + "@"`, false],
    ["many specs, accepted", `"a" + ",==1".repeat(N / 4).slice(1)`, true],
    ["spaces around a marker, accepted", `"a" + " ".repeat(N) + "; python_version > '3'"`, true],
  ];
  for (const [what, expr, expected] of adversarial) {
    it(`decides a 512 KB line (${what}) in one pass`, async () => {
      const result = await bounded(
        `const N = ${512 * KB}; const { plainRequirement } = await load("runtime/python/check.js"); return plainRequirement(${expr});`,
      );
      expect(result).toBe(expected);
    });
  }

  it("refuses a 1 MiB line of spaces at its line, saying how long it is and what the limit is", async () => {
    const problems = (await bounded(
      `const { requirementProblems } = await load("runtime/python/check.js"); return requirementProblems("ok==1\\na" + " ".repeat(${1024 * KB - 20}) + "x\\n");`,
    )) as { line: number; problem: string }[];
    expect(problems).toEqual([
      {
        line: 2,
        problem: `the line is ${1024 * KB - 18} characters long, over the ${MAX_REQUIREMENT_LINE}-character limit of a requirement line`,
      },
    ]);
  });

  it('refuses a 1 MiB line of " #" ending in a carriage return at its line', async () => {
    // (^|\s)#.*$ scanned to the \r from every " #" and failed there: quadratic.
    const problems = (await bounded(
      `const { requirementProblems } = await load("runtime/python/check.js"); return requirementProblems("a" + " #".repeat(${512 * KB}) + "\\rb");`,
    )) as { line: number; problem: string }[];
    expect(problems).toEqual([
      { line: 1, problem: expect.stringContaining(`over the ${MAX_REQUIREMENT_LINE}-character limit`) },
    ]);
  });

  it('takes everything after " #" as a comment, a carriage return included, as pip does', () => {
    expect(requirementProblems(`a${" #".repeat(400)}\rb\nc # x\ry\n`)).toEqual([]);
  });

  it("reports at most 20 bad lines of a 1 MiB file, then counts the rest", async () => {
    const LINES = Math.floor((1024 * KB) / 6);
    const problems = (await bounded(
      `const { requirementProblems } = await load("runtime/python/check.js"); return requirementProblems("x @ y\\n".repeat(${LINES}));`,
    )) as { line: number; problem: string }[];
    expect(problems).toHaveLength(21);
    expect(problems[0]).toEqual({ line: 1, problem: expect.stringContaining('"x @ y" is not a plain requirement') });
    expect(problems[20]).toEqual({
      line: 21,
      problem: `this line and ${LINES - 21} more after it are not plain requirements either (only the first 20 are described)`,
    });
  });

  it("accepts and refuses exactly the lines the old expression did (fast-check, short lines)", () => {
    const token = fc.constantFrom(
      "a",
      "Z9",
      "b.c",
      "-",
      "_",
      " ",
      "\t",
      "[",
      "]",
      "(",
      ")",
      ",",
      "==",
      "!=",
      "~=",
      ">=",
      "<",
      ">",
      "===",
      "1.0",
      "*",
      "+",
      "!",
      ";",
      "@",
      "\\",
      "'",
      '"',
      "x y",
    );
    fc.assert(
      fc.property(fc.array(token, { maxLength: 14 }), (parts) => {
        const line = parts.join("").trim();
        expect(plainRequirement(line), JSON.stringify(line)).toBe(OLD_REQUIREMENT.test(line));
      }),
      { numRuns: 20_000 },
    );
  });

  it("still takes plain requirements and refuses options, URLs and continuations", () => {
    expect(
      requirementProblems(
        "# c\nlzpkg==0.1  # fine\nrequests[socks, security] (>=2.0, <3); python_version >= '3.8'\nA.b-c_d ~= 1.0.*\n",
      ),
    ).toEqual([]);
    expect(requirementProblems("-r x\nevil @ file:///etc/passwd\na \\\n").map((p) => p.line)).toEqual([1, 2, 3]);
  });
});

describe("salvaging cell names from a broken file: linear on any text", () => {
  const cases: [string, string, string[]][] = [
    ["1 MiB of line breaks", `"\\n".repeat(N)`, []],
    ["1 MiB of CRLF", `"\\r\\n".repeat(N / 2)`, []],
    ["1 MiB of spaces", `" ".repeat(N)`, []],
    ["name: and 1 MiB of blanks", `"name:" + " \\t".repeat(N / 2) + "\\n x"`, ["x"]],
    ["a dash and line breaks", `"-" + "\\n".repeat(N)`, []],
    ["many near-miss names", `"  - name: a-\\n".repeat(N / 12)`, []],
    ["spaces then line breaks", `(" ".repeat(1000) + "\\n").repeat(N / 1001)`, []],
    ["metadata: { and 1 MiB of blanks", `"metadata: {" + " ".repeat(N) + "name x"`, []],
    ["many metadata: { name:", `"metadata: {name: a-".repeat(N / 20)`, []],
  ];
  for (const [what, expr, expected] of cases) {
    it(`returns at once on ${what}`, async () => {
      const names = await bounded(
        `const N = ${1024 * KB}; const { salvageNames } = await load("config/load.js"); return salvageNames(${expr});`,
      );
      expect(names).toEqual(expected);
    });
  }

  it("still finds the names it found before, in block, list, quoted, commented and CRLF forms", () => {
    expect(
      salvageNames(
        "metadata:\n  name: alpha\n  labels: {\n- name: 'beta'  # x\r\n-  name: \"gamma\"\r\nname:\n  delta\nname: Bad\n",
      ),
    ).toEqual(["alpha", "beta", "delta", "gamma"]);
    expect(
      salvageNames(
        "apiVersion: lazarus/v1\nmetadata: {name: flow, labels: {a: b}}\nspec: [\n---\nmetadata: { name: 'other' }\n",
      ),
    ).toEqual(["flow", "other"]);
  });
});

describe("operator-given text: linear too", () => {
  it("tells a git URL from a path in one pass over 512 KB of '@'", async () => {
    const r = await bounded(
      `const { isGitUrl } = await load("gitops/git.js"); return [isGitUrl("@".repeat(${512 * KB})), isGitUrl("a" + "@".repeat(${512 * KB}) + ":x"), isGitUrl("git@host:org/repo.git"), isGitUrl("./dir@x:y"), isGitUrl("https://h/r.git")];`,
    );
    expect(r).toEqual([false, true, true, false, true]);
  });

  it("imports a legacy portfolio whose agent name holds a 512 KB run of dashes", async () => {
    const r = (await bounded(
      `const { importLegacy } = await load("portfolio/legacy.js"); return importLegacy("agents:\\n  ? x" + "-".repeat(${512 * KB}) + "y\\n  : primary: {model: m}\\n").names;`,
    )) as string[];
    expect(r[0]).toMatch(/^agent-x-+$/);
    expect(r[1]).toBe("default");
  });
});

describe("through the CLI", () => {
  it("validate reports a requirements file of one 1 MiB line at that line, and loads every other file", async () => {
    const config = configDir({
      "cells.d/py.yaml": cellYaml({
        name: "py",
        members: [{ identity: "human:h", role: "director" }],
        extra: "  runtime:\n    python: {requirements: python/req.txt}",
      }),
      "cells.d/ok.yaml": cellYaml({ name: "ok", members: [{ identity: "human:h", role: "director" }] }),
    });
    dirs.push(config);
    mkdirSync(path.join(config, "python"));
    writeFileSync(path.join(config, "python", "req.txt"), `lzpkg==1\na${" ".repeat(1024 * KB - 20)}x\n`);
    const r = await lazarus(["validate", "--json", "--config", config], { timeoutMs: DEADLINE_MS });
    expect(r.signal, "validate did not finish").toBeUndefined();
    expect(r.exitCode).toBe(1);
    const out = JSON.parse(r.stdout) as {
      cells: string[];
      diagnostics: { file: string; line: number; message: string }[];
    };
    expect(out.cells).toEqual(["ok"]);
    expect(out.diagnostics).toEqual([
      expect.objectContaining({
        file: "python/req.txt",
        line: 2,
        message: expect.stringContaining(`over the ${MAX_REQUIREMENT_LINE}-character limit of a requirement line`),
      }),
    ]);
  });

  it("validate holds the cell of a 1 MiB broken file of blank lines, and loads every other file", async () => {
    const config = configDir({
      "cells.d/ok.yaml": cellYaml({ name: "ok", members: [{ identity: "human:h", role: "director" }] }),
    });
    dirs.push(config);
    writeFileSync(
      path.join(config, "cells.d", "broken.yaml"),
      `${"\n".repeat(1024 * KB - 64)}metadata:\n  name: kept\nspec: [\n`,
    );
    const r = await lazarus(["validate", "--json", "--config", config], { timeoutMs: DEADLINE_MS });
    expect(r.signal, "validate did not finish").toBeUndefined();
    expect(r.exitCode).toBe(1);
    const out = JSON.parse(r.stdout) as { cells: string[]; held?: unknown; diagnostics: { file: string }[] };
    expect(out.cells).toEqual(["ok"]);
    expect(out.diagnostics.map((d) => d.file)).toContain("cells.d/broken.yaml");
  });
});
