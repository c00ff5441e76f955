// A compact plan for a pull-request comment: a table of cells and actions, counts per action and
// diagnostics. No colour codes; nothing secret (plans never hold credential values or tokens).
import { formatDiagnostic, visible, type Diagnostic } from "../../config/diagnostics.js";
import type { Plan } from "../plan.js";
import { summary } from "./text.js";
import { actionToJson } from "./json.js";

// A table cell or code span: control characters escaped (names of files are a committer's), pipes too.
const cell = (text: string): string => visible(text).replace(/\|/g, "\\|");

export function renderPlanMarkdown(p: Plan, diagnostics: Diagnostic[], revision?: string): string {
  const lines: string[] = [`### Lazarus plan${revision ? ` for \`${revision.slice(0, 12)}\`` : ""}`, ""];
  if (p.actions.length === 0 && p.held.length > 0)
    lines.push(
      `**No changes to apply, but ${p.held.length} cell${p.held.length === 1 ? " is" : "s are"} held:** ${p.held.length === 1 ? "its file does" : "their files do"} not load (see the diagnostics below).`,
    );
  else if (p.actions.length === 0 && p.unnamedFiles.length > 0)
    lines.push(
      `**No changes to apply, but ${p.unnamedFiles.length === 1 ? "a file does" : `${p.unnamedFiles.length} files do`} not load** (see the diagnostics below): no cell declared there is created, changed or closed.`,
    );
  else if (p.actions.length === 0) lines.push("**No changes.** The cells match the desired state.");
  else {
    lines.push(
      `**${p.actions.length} action${p.actions.length === 1 ? "" : "s"}:** ${summary(p.actions)}`,
      "",
      "| cell | action | member | reason |",
      "|---|---|---|---|",
    );
    for (const a of p.actions) {
      const j = actionToJson(a);
      lines.push(
        `| \`${cell(j.cell)}\` | ${j.action} | ${j.member ? `\`${cell(j.member)}\`` : ""} | ${cell(j.reason)} |`,
      );
    }
  }
  if (p.held.length > 0) {
    lines.push("", "**Held** (their files are quarantined; left exactly as they are):", "");
    for (const h of p.held)
      lines.push(
        `- \`${cell(h.cell)}\` — \`${cell(h.file)}\`${h.new ? " (new: not created until the file loads)" : ""}`,
      );
  }
  if (p.unnamedFiles.length > 0) {
    lines.push(
      "",
      "**Quarantined files** (no cell could be named from them; none they declare is created, changed or closed):",
      "",
    );
    for (const f of p.unnamedFiles) lines.push(`- \`${cell(f)}\``);
  }
  if (p.pending.length > 0) {
    lines.push("", "**Waiting:**", "");
    for (const w of p.pending) lines.push(`- \`${cell(w.cell)}\` — ${cell(w.reason)}`);
  }
  const errors = diagnostics.filter((d) => d.severity === "error").length;
  if (diagnostics.length > 0) {
    lines.push(
      "",
      `**Diagnostics** (${errors} error${errors === 1 ? "" : "s"}, ${diagnostics.length - errors} warning${diagnostics.length - errors === 1 ? "" : "s"}):`,
      "",
      "```",
    );
    for (const d of diagnostics) lines.push(formatDiagnostic(d));
    lines.push("```");
  }
  lines.push("", `<sub>planned at ${p.now}</sub>`);
  return lines.join("\n");
}
