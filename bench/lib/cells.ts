// The generated config the plan benchmarks share: realistic cells (labels, ttl, a director and
// an observer), 100 cells per file, as a fleet's config repo might group them.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";

export function cellDoc(i: number): string {
  return [
    "apiVersion: lazarus/v1",
    "kind: Cell",
    "metadata:",
    `  name: cell-${i}`,
    `  labels: {team: t${i % 10}}`,
    "spec:",
    `  project: Org/repo#${i}`,
    "  owner: human:alexander",
    "  ttl: 8h",
    "  members:",
    "    - identity: human:alexander",
    "      role: director",
    "    - identity: bot:reviewer",
    "      role: observer",
  ].join("\n");
}

// Write N cells (doc: each one's YAML) into config/cells.d/team-<k>.yaml, 100 per file.
export function writeCells(config: string, n: number, perFile = 100, doc: (i: number) => string = cellDoc): void {
  mkdirSync(path.join(config, "cells.d"), { recursive: true });
  for (let f = 0; f < Math.ceil(n / perFile); f++) {
    const docs: string[] = [];
    for (let i = f * perFile; i < Math.min(n, (f + 1) * perFile); i++) docs.push(doc(i));
    writeFileSync(path.join(config, "cells.d", `team-${f}.yaml`), `${docs.join("\n---\n")}\n`);
  }
}
