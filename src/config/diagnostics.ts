// Diagnostics: every problem found while loading or planning, reported together.

export type Severity = "error" | "warning";

export interface Diagnostic {
  severity: Severity;
  file?: string; // relative to the config dir
  line?: number;
  col?: number;
  field?: string; // dotted path, e.g. spec.members[1].role
  message: string; // what is wrong
  hint?: string; // what to do
}

export function hasErrors(diags: readonly Diagnostic[]): boolean {
  return diags.some((d) => d.severity === "error");
}

// Characters a terminal obeys or hides rather than shows: C0 controls (tab and newline aside), DEL,
// C1 controls, and the invisible format characters — bidi embeddings, overrides and isolates
// (U+202A–U+202E, U+2066–U+2069), marks (U+200E, U+200F, U+061C), zero-width ones (U+200B–U+200D,
// U+2060–U+2065, U+FEFF) and the line and paragraph separators (U+2028, U+2029).
const HIDDEN = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;
// The same, with tab and newline: what a one-line, plain-text field may not hold at all.
const NOT_PLAIN = /[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/;

const escaped = (ch: string): string => {
  const code = ch.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u{${code.toString(16)}}`;
};

// Text from outside Lazarus (the config repo, commit subjects, authors and refs, member output) as
// it may reach a terminal: every character of HIDDEN shown as \xNN or \u{NNNN}, so a committed
// "\e[2K\r" or "\e[1A" cannot erase or rewrite lines of a plan or a validation under review, and a
// bidi override cannot make text read other than it is. The one escaping function for output.
export function visible(text: string): string {
  return text.replace(HIDDEN, escaped);
}

// The first character a plain-text field may not hold, as "U+001B", or undefined.
export function notPlain(text: string): string | undefined {
  const m = NOT_PLAIN.exec(text);
  return m ? `U+${m[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}` : undefined;
}

// file:line:col: error: field: message; hint
export function formatDiagnostic(d: Diagnostic): string {
  const where = d.file ? `${d.file}${d.line ? `:${d.line}:${d.col ?? 1}` : ""}: ` : "";
  const field = d.field ? `${d.field}: ` : "";
  const hint = d.hint ? ` (${d.hint})` : "";
  return visible(`${where}${d.severity}: ${field}${d.message}${hint}`);
}

export function sortDiagnostics(diags: Diagnostic[]): Diagnostic[] {
  return [...diags].sort(
    (a, b) =>
      (a.file ?? "").localeCompare(b.file ?? "") || (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0),
  );
}
