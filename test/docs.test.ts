// The YAML examples in README.md and docs/ are valid: users copy them.
import { readFileSync } from "node:fs";
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
  const blocks = yamlBlocks("README.md");
  it("has examples to check", () => {
    expect(blocks.length).toBeGreaterThanOrEqual(2);
  });
  it.each(blocks.map((b, i) => [i, b]))("README example %i validates", (_i, block) => {
    const r = /^kind: Portfolio$/m.test(block) ? loadPortfolioText("README.md", block) : loadFileText("README.md", block);
    expect(r.diagnostics.map(formatDiagnostic)).toEqual([]);
  });
});
