// What the layout-aware benchmarks share (vs-yaml-plan, vs-supervisord-resync): how many cells
// each file of cells.d/ holds, the cell they all declare, and the builds to compare.
//   --layouts 1,100   cells per file, each measured in the same run, turns taken (default: both;
//                     1 is the README's layout, one cell per file; 100 is how bench/ groups them)
//   --cli NAME=PATH   a build's dist/cli.js (repeatable, e.g. before=/tmp/before/dist/cli.js);
//                     default: this tree's dist/cli.js, named "this"
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

export interface Build {
  name: string;
  cli: string;
}

export interface LayoutArgs {
  positional: string[];
  layouts: number[]; // cells per file
  builds: Build[];
}

export function layoutArgs(argv = process.argv.slice(2)): LayoutArgs {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { layouts: { type: "string", default: "1,100" }, cli: { type: "string", multiple: true } },
  });
  const layouts = (values.layouts ?? "1,100").split(",").map(Number);
  if (layouts.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--layouts: ${values.layouts}`);
  const own = path.resolve(import.meta.dirname, "..", "..", "dist", "cli.js");
  const builds = (values.cli ?? []).map((c) => {
    const eq = c.indexOf("=");
    return eq > 0 ? { name: c.slice(0, eq), cli: path.resolve(c.slice(eq + 1)) } : { name: c, cli: path.resolve(c) };
  });
  return { positional: positionals, layouts, builds: builds.length ? builds : [{ name: "this", cli: own }] };
}

// A cell as the README's cells.d/ examples write one: the schema comment, labels, a backend, a
// TTL and one member with a command (process backend, so the resync bench can run it).
export function readmeCellDoc(i: number): string {
  return [
    "# yaml-language-server: $schema=../schemas/cell.schema.json",
    "apiVersion: lazarus/v1",
    "kind: Cell",
    "metadata:",
    `  name: cell-${i}`,
    `  labels: {team: t${i % 10}}`,
    "spec:",
    `  project: Org/repo#${i}`,
    "  owner: human:alexander",
    "  backend: process",
    "  ttl: 8h",
    "  members:",
    "    - identity: agent:a",
    "      role: executor",
    '      command: ["sleep", "3600"]',
  ].join("\n");
}

// config/cells.d/ with n cells, perFile to a file (cell-<i>.yaml when 1, team-<k>.yaml otherwise),
// and an empty config/portfolios/.
export function writeLayout(config: string, n: number, perFile: number, doc = readmeCellDoc): void {
  const dir = path.join(config, "cells.d");
  mkdirSync(dir, { recursive: true });
  mkdirSync(path.join(config, "portfolios"), { recursive: true });
  for (let f = 0; f < Math.ceil(n / perFile); f++) {
    const docs: string[] = [];
    for (let i = f * perFile; i < Math.min(n, (f + 1) * perFile); i++) docs.push(doc(i));
    const name = perFile === 1 ? `cell-${f}.yaml` : `team-${f}.yaml`;
    writeFileSync(path.join(dir, name), `${docs.join("\n---\n")}\n`);
  }
}

export const layoutName = (perFile: number): string => (perFile === 1 ? "one cell per file" : `${perFile} per file`);
