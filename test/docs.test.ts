// The YAML examples in README.md and docs/ are valid: users copy them.
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadFileText, loadPortfolioText } from "../src/config/load.js";
import { formatDiagnostic } from "../src/config/diagnostics.js";
import { ROOT } from "./helpers.js";

function yamlBlocks(file: string): string[] {
  const text = readFileSync(path.join(ROOT, file), "utf8");
  return [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] as string).filter((b) => /^kind: (Cell|Portfolio)$/m.test(b));
}

describe("documentation examples", () => {
  const files = ["README.md", ...readdirSync(path.join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];
  const blocks = files.flatMap((f) => yamlBlocks(f).map((b) => [f, b] as const));
  it("has examples to check, a cell and a portfolio at least", () => {
    expect(blocks.some(([, b]) => /^kind: Cell$/m.test(b))).toBe(true);
    expect(blocks.some(([, b]) => /^kind: Portfolio$/m.test(b))).toBe(true);
  });
  it.each(blocks.map(([f, b], i) => [i, f, b]))("example %i in %s validates", (_i, file, block) => {
    const r = /^kind: Portfolio$/m.test(block) ? loadPortfolioText(file, block) : loadFileText(file, block);
    expect(r.diagnostics.map(formatDiagnostic)).toEqual([]);
  });
});
