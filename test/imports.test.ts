// The shape of src/ that no type checker holds: no import cycle (every import counts: static, type
// only, re-exports and dynamic import()), and no backend name compared outside src/backends/ (the
// core asks the registry; see src/backends/contract.ts). Read with the TypeScript compiler's own
// parser, so comments and strings are never taken for imports.
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { ROOT } from "./helpers.js";
import { backendNames } from "../src/backends/registry.js";

const SRC = path.join(ROOT, "src");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") ? [p] : [];
  });
}

// The src files a file imports (relative specifiers, ".js" written for ".ts").
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, "utf8"), true, true);
  return info.importedFiles
    .map((f) => f.fileName)
    .filter((s) => s.startsWith("."))
    .map((s) => path.resolve(path.dirname(file), s.replace(/\.js$/, ".ts")));
}

// Every cycle of the graph, one per strongly connected component of more than one file (or a
// file importing itself), each as the files around it (Tarjan's algorithm).
export function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v) as number, idx.get(w) as number));
    }
    if (low.get(v) !== idx.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop() as string;
      on.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc.sort());
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

// The text with every comment blanked (a comment may name a backend as an example): the comments
// before and after each token of the syntax tree, as the compiler attaches them.
function withoutComments(file: string, text: string): string {
  const code = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const chars = text.split(""); // UTF-16 units, as the compiler counts positions
  const blank = (r: ts.CommentRange): void => {
    for (let i = r.pos; i < r.end; i++) if (chars[i] !== "\n") chars[i] = " ";
  };
  const walk = (n: ts.Node): void => {
    const kids = n.getChildren(code);
    if (kids.length === 0) {
      for (const r of ts.getLeadingCommentRanges(text, n.getFullStart()) ?? []) blank(r);
      for (const r of ts.getTrailingCommentRanges(text, n.getEnd()) ?? []) blank(r);
    }
    kids.forEach(walk);
  };
  walk(code);
  return chars.join("");
}

describe("src/ imports", () => {
  const files = sources(SRC);
  const graph = new Map(files.map((f) => [f, importsOf(f)]));

  it("have no cycle (type-only and dynamic imports included)", () => {
    const found = cycles(graph).map((c) => c.map((f) => path.relative(SRC, f)).join(" ⇄ "));
    expect(found).toEqual([]);
  });

  it("the cycle finder finds a cycle (two files importing each other, and a longer ring)", () => {
    const g = new Map([
      ["a", ["b"]],
      ["b", ["a"]],
      ["c", ["d"]],
      ["d", ["e"]],
      ["e", ["c"]],
      ["f", ["a"]],
    ]);
    expect(cycles(g)).toEqual([
      ["a", "b"],
      ["c", "d", "e"],
    ]);
  });

  it("compare no backend's name outside src/backends/ (the core asks the registry)", () => {
    const names = backendNames().join("|");
    // A name next to the word backend on a line of code: backend === "x", "x" !== rec.backend,
    // case "x" in a switch over a backend, [..."x"].includes(c.backend).
    const compared = new RegExp(`backend[^;]*["'](${names})["']|["'](${names})["'][^;]*backend`, "i");
    const found: string[] = [];
    for (const f of files) {
      const rel = path.relative(SRC, f);
      if (rel.startsWith(`backends${path.sep}`) || rel === path.join("config", "validators.generated.ts")) continue;
      const text = readFileSync(f, "utf8");
      if (!text.split("\n").some((l) => compared.test(l))) continue; // no line can match: skip the parse
      const lines = withoutComments(f, text).split("\n");
      lines.forEach((l, i) => {
        if (compared.test(l)) found.push(`${path.relative(ROOT, f)}:${i + 1}: ${l.trim()}`);
      });
    }
    expect(found).toEqual([]);
  });
});
