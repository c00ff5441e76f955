// Hostile YAML: every case is a diagnostic at file:line:col, never a crash, never a silent repair.
import { describe, expect, it } from "vitest";
import { loadFileText, loadPortfolioText } from "../../src/config/load.js";
import { formatDiagnostic } from "../../src/config/diagnostics.js";
import { parseYamlStream } from "../../src/config/yaml-stream.js";
import { cellYaml, cleanup, configDir, lazarus, tempDir } from "../helpers.js";

const file = "cells.d/a.yaml";
const lines = (text: string) => loadFileText(file, text).diagnostics.map(formatDiagnostic);
const POSITIONED = /^cells\.d\/a\.yaml:\d+:\d+: error: /;

describe("hostile YAML in cells.d", () => {
  it("stops an alias bomb (billion laughs) at its first alias", () => {
    const bomb = [
      "a: &a [x, x, x, x, x, x, x, x, x]",
      ...["b", "c", "d", "e", "f", "g", "h"].map(
        (k, i) => `${k}: &${k} [${Array(9).fill(`*${"abcdefgh"[i]}`).join(", ")}]`,
      ),
    ].join("\n");
    const started = Date.now();
    const d = lines(`${bomb}\n`);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(d).toHaveLength(1);
    expect(d[0]).toMatch(/^cells\.d\/a\.yaml:2:\d+: error: YAML aliases expand too much/);
  });

  it("reports an alias without an anchor at the alias", () => {
    const d = lines(cellYaml({ name: "c1", extra: "  owner2: *nowhere" }));
    expect(d).toHaveLength(1);
    expect(d[0]).toMatch(/^cells\.d\/a\.yaml:8:11: error: YAML alias \*nowhere has no anchor/);
  });

  it.each([
    ["flow sequences", `a: ${"[".repeat(100_000)}${"]".repeat(100_000)}\n`],
    ["flow mappings", `a: ${"{a: ".repeat(5000)}1${"}".repeat(5000)}\n`],
    ["block mappings", `${Array.from({ length: 3000 }, (_, i) => `${" ".repeat(i)}a:`).join("\n")} 1\n`],
    ["block sequences", `${"- ".repeat(5000)}x\n`],
  ])("refuses nesting deeper than 64 levels of %s, at the line where it gets too deep", (_what, text) => {
    const d = lines(text);
    expect(d).toHaveLength(1);
    expect(d[0]).toMatch(POSITIONED);
    expect(d[0]).toContain("YAML nests deeper than 64 levels");
    expect(d[0]).not.toContain("call stack");
  });

  it.each([
    [
      "!!js/function",
      "  project: !!js/function 'function () { return 1 }'",
      "YAML tag !!js/function is not allowed",
      6,
    ],
    ["a local tag", "  project: !custom x", "YAML tag !custom is not allowed", 6],
    ["!!binary (YAML 1.1)", "  project: !!binary aGVsbG8=", "YAML tag !!binary is not allowed", 6],
    ["!!set (YAML 1.1)", "  labels: !!set {a, b}", "YAML tag !!set is not allowed", 8],
  ])("refuses the tag %s", (_what, line, message, at) => {
    const text = cellYaml({ name: "c1", extra: line.startsWith("  project") ? undefined : line }).replace(
      "  project: Org/repo#1",
      line.startsWith("  project") ? line : "  project: Org/repo#1",
    );
    const d = lines(text);
    expect(d.length).toBeGreaterThanOrEqual(1);
    expect(d[0]).toMatch(new RegExp(`^cells\\.d/a\\.yaml:${at}:\\d+: error: ${message.replace(/[!.*]/g, "\\$&")}`));
  });

  it.each([
    ["a sequence", "  labels:\n    ? [a, b]\n    : x"],
    ["a mapping", "  labels:\n    {team: x}: y"],
  ])("refuses %s used as a mapping key", (_what, extra) => {
    const d = lines(cellYaml({ name: "c1", extra }));
    expect(d[0]).toMatch(/^cells\.d\/a\.yaml:9:\d+: error: YAML syntax: a mapping key must be a plain string/);
  });

  it("reports a parser warning as a diagnostic with its position", () => {
    const d = lines(`%FOO bar\n---\n${cellYaml({ name: "c1" })}`);
    expect(d.some((l) => /^cells\.d\/a\.yaml:1:\d+: (warning|error): YAML/.test(l))).toBe(true);
  });

  it("treats << as an ordinary (unknown) key, never as a merge", () => {
    const d = lines(cellYaml({ name: "c1", extra: "  <<: {ttl: 24h}" }));
    expect(d).toEqual([
      'cells.d/a.yaml:8:3: error: spec.<<: unknown field "<<" (remove it or check its spelling against schemas/cell.schema.json)',
    ]);
  });

  it("gives portfolios the same protection", () => {
    const r = loadPortfolioText(
      "portfolios/p.yaml",
      `apiVersion: lazarus/v1\nkind: Portfolio\nmetadata: {name: !!js/function p}\nspec: {models: [{model: m, provider: p}]}\n`,
    );
    expect(r.diagnostics.map(formatDiagnostic)[0]).toMatch(
      /^portfolios\/p\.yaml:3:\d+: error: YAML tag !!js\/function is not allowed/,
    );
  });
});

// yaml's parser runs with an empty process.env (it reads LOG_TOKENS for every lexeme: see
// src/config/yaml-stream.ts); everything else, Lazarus's checks of each cell included, must see
// the real environment, also after a document that fails and after a check that throws.
describe("the environment while YAML is parsed", () => {
  it("is the real one in each document's checks and after the parse, even when a check throws", () => {
    const real = process.env;
    process.env.LAZARUS_TEST_MARK = "seen";
    try {
      const seen: (string | undefined)[] = [];
      parseYamlStream(file, "a: 1\n---\nb: [\n---\nc: 3\n", () => {
        seen.push(process.env.LAZARUS_TEST_MARK);
        expect(process.env).toBe(real);
      });
      expect(seen).toEqual(["seen", "seen"]);
      expect(process.env).toBe(real);
      expect(() =>
        parseYamlStream(file, "a: 1\n---\nb: 2\n", () => {
          throw new Error("a check failed");
        }),
      ).toThrow("a check failed");
      expect(process.env).toBe(real);
    } finally {
      delete process.env.LAZARUS_TEST_MARK;
    }
  });

  it("keeps yaml's LOG_TOKENS debugging out of plan --json", async () => {
    const dir = configDir({ "cells.d/a.yaml": cellYaml({ name: "a" }) });
    const state = tempDir();
    try {
      const r = await lazarus(["plan", "--json", "--config", dir, "--state-dir", state], {
        env: { LOG_TOKENS: "1" },
      });
      expect(r.stderr).toBe("");
      expect((JSON.parse(r.stdout) as { actions: unknown[] }).actions).toHaveLength(1);
    } finally {
      cleanup(dir, state);
    }
  });
});
