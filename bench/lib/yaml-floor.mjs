// The parse floor for `lazarus plan`: a fresh node process that only loads `yaml` and parses
// every *.yaml file of <config>/cells.d with parseAllDocuments. Usage: node yaml-floor.mjs <config>
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { parseAllDocuments } from "yaml";

const dir = path.join(process.argv[2] ?? ".", "cells.d");
let docs = 0;
for (const f of readdirSync(dir).sort()) {
  if (!/\.ya?ml$/.test(f)) continue;
  const parsed = parseAllDocuments(readFileSync(path.join(dir, f), "utf8"));
  docs += Array.isArray(parsed) ? parsed.length : 1;
}
if (process.env.YAML_FLOOR_VERBOSE) console.log(docs);
