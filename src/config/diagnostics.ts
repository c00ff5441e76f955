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

// file:line:col: error: field: message; hint
// Text from the config repo (file names, quoted values) as it may reach a terminal: control
// characters other than tab and newline shown as \xNN, so a committed "\e[2K\r" or "\e[1A"
// cannot erase or rewrite lines of a plan or a validation under review.
export function visible(text: string): string {
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

export function formatDiagnostic(d: Diagnostic): string {
  const where = d.file ? `${d.file}${d.line ? `:${d.line}:${d.col ?? 1}` : ""}: ` : "";
  const field = d.field ? `${d.field}: ` : "";
  const hint = d.hint ? ` (${d.hint})` : "";
  return visible(`${where}${d.severity}: ${field}${d.message}${hint}`);
}

export function sortDiagnostics(diags: Diagnostic[]): Diagnostic[] {
  return [...diags].sort(
    (a, b) =>
      (a.file ?? "").localeCompare(b.file ?? "") ||
      (a.line ?? 0) - (b.line ?? 0) ||
      (a.col ?? 0) - (b.col ?? 0),
  );
}
