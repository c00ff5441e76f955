// One config file's text, or the diagnostic that quarantines it: the single way cells.d/ and
// portfolios/ files are read (by load, by the portfolio loader and by the daemon's cache).
import path from "node:path";
import type { Diagnostic } from "./diagnostics.js";
import { decodeYaml } from "./decode.js";
import { maxFileSize, readRegularFile, type RealDirs } from "./read.js";

export type Source = { kind: "text"; text: string } | { kind: "problem"; diagnostic: Diagnostic } | { kind: "missing" };

// Read rel (e.g. cells.d/a.yaml) under configDir; "missing" when it is gone (deleted meanwhile).
// dirs: the real paths of the directories already resolved in this load; listed: the listing of
// its directory said it is a regular file (read.ts).
export async function readSource(
  configDir: string,
  rel: string,
  maxBytes = maxFileSize(),
  dirs?: RealDirs,
  listed?: boolean,
): Promise<Source> {
  const r = await readRegularFile(path.join(configDir, rel), maxBytes, configDir, dirs, listed);
  if (r.kind === "missing") return r;
  if (r.kind === "problem")
    return {
      kind: "problem",
      diagnostic: {
        severity: "error",
        file: rel,
        message: `cannot read this file: ${r.problem.problem}`,
        hint: r.problem.hint,
      },
    };
  const d = decodeYaml(r.bytes);
  if ("text" in d) return { kind: "text", text: d.text };
  return {
    kind: "problem",
    diagnostic: { severity: "error", file: rel, line: d.line, col: d.col, message: d.problem, hint: d.hint },
  };
}
