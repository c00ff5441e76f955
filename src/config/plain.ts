// Fields the docs call plain text (a cell's project, its labels' keys and values) may not hold a
// control or invisible format character: YAML escapes in a double-quoted string ("\e[2J",
// "\u202e") would otherwise put them there, and from there into plans, status and the ledger.
// Pure: an error at the field's line for each. Names and identities are safe by their patterns.
import { notPlain, type Diagnostic } from "./diagnostics.js";
import type { DesiredCell, SourcePos } from "./types.js";

const HINT =
  'write plain text: escape sequences such as "\\e[31m" and invisible or bidi characters such as "\\u202e" are not allowed here';

export function plainTextDiagnostics(cell: DesiredCell, at: (p: (string | number)[]) => SourcePos): Diagnostic[] {
  const out: Diagnostic[] = [];
  // Where, which field and what it is are worked out only for a bad text (every cell is checked).
  const check = (bad: string | undefined, where: () => [(string | number)[], string, string]): void => {
    if (!bad) return;
    const [p, field, what] = where();
    out.push({
      severity: "error",
      ...at(p),
      field,
      message: `${what} holds the character ${bad}, which a terminal would obey or hide rather than show`,
      hint: HINT,
    });
  };
  check(notPlain(cell.project), () => [["spec", "project"], "spec.project", "the project"]);
  for (const [key, value] of Object.entries(cell.labels)) {
    check(notPlain(key), () => [["metadata", "labels", key], `metadata.labels`, "a label's key"]);
    check(notPlain(value), () => [
      ["metadata", "labels", key],
      `metadata.labels.${key.replace(/[^\w.-]/g, "?")}`,
      `label ${JSON.stringify(key)}`,
    ]);
  }
  return out;
}
