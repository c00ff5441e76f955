// The human view of a plan, in the style of terraform plan.
import { formatDiagnostic, visible, type Diagnostic } from "../../config/diagnostics.js";
import { ACTION_KINDS, SYMBOLS, type Action, type ActionKind } from "../actions.js";
import type { HeldCell, Plan } from "../plan.js";
import type { Colors } from "./colors.js";

function colorOf(kind: ActionKind, c: Colors): (s: string) => string {
  switch (kind) {
    case "create":
    case "invite":
    case "resurrect":
    case "progress":
      return c.green;
    case "renew":
    case "update":
    case "replace":
    case "restart":
      return c.yellow;
    default:
      return c.red;
  }
}

export function actionLine(a: Action, c: Colors, width: number): string {
  const paint = colorOf(a.kind, c);
  // Symbols right-aligned in three columns, as terraform prints "  +" and "-/+".
  return `${" ".repeat(Math.max(0, 3 - SYMBOLS[a.kind].length))}${paint(SYMBOLS[a.kind])} ${paint(a.kind.padEnd(13))} ${c.bold(a.cell.padEnd(width))}  ${visible(a.reason)}`;
}

export function summary(actions: Action[]): string {
  const counts = ACTION_KINDS.map((k) => [k, actions.filter((a) => a.kind === k).length] as const).filter(
    ([, n]) => n > 0,
  );
  return counts.map(([k, n]) => `${n} ${k}`).join(", ");
}

export function renderDiagnostics(diags: Diagnostic[], c: Colors): string {
  return diags
    .map((d) => {
      const line = formatDiagnostic(d);
      return d.severity === "error" ? c.red(line) : c.yellow(line);
    })
    .join("\n");
}

// The line heading a plan with no actions: never "the cells match" while a file is quarantined
// (its cells are not compared at all, and a new one in it is not created).
function noActionsLine(p: Plan, c: Colors, heldCount: string): string {
  const files = p.unnamedFiles.length;
  if (p.held.length > 0)
    return c.yellow(
      `No changes to apply, but ${heldCount}: ${p.held.length === 1 ? "its file does" : "their files do"} not load (see the errors above); fix ${p.held.length === 1 ? "it" : "them"} and plan again.`,
    );
  if (files > 0)
    return c.yellow(
      `No changes to apply, but ${files === 1 ? "a file does" : `${files} files do`} not load (see the errors above): no cell ${files === 1 ? "it declares" : "they declare"} is created, changed or closed; fix ${files === 1 ? "it" : "them"} and plan again.`,
    );
  return c.green(
    p.pending.length > 0
      ? "No changes now. Waiting on the timers below."
      : "No changes. The cells match the desired state.",
  );
}

// What a held cell's line says: a cell on disk is left as it is; a new one is not created.
const heldReason = (h: HeldCell): string =>
  `${visible(h.file)} is quarantined; ${h.new ? "the new cell is not created until it loads" : "the cell is left exactly as it is"}`;

export function renderPlanText(p: Plan, c: Colors): string {
  const lines: string[] = [];
  const width = Math.max(
    4,
    ...p.actions.map((a) => a.cell.length),
    ...p.held.map((h) => h.cell.length),
    ...p.pending.map((w) => w.cell.length),
  );
  const heldCount = `${p.held.length} cell${p.held.length === 1 ? " is" : "s are"} held`;
  if (p.actions.length === 0) lines.push(noActionsLine(p, c, heldCount));
  else {
    lines.push(`Lazarus will perform the following actions at ${p.now}:`, "");
    for (const a of p.actions) lines.push(actionLine(a, c, width));
  }
  if (p.pending.length > 0) {
    lines.push("");
    for (const w of p.pending)
      lines.push(
        `  ${c.dim("…")} ${c.dim("waiting".padEnd(13))} ${c.bold(w.cell.padEnd(width))}  ${visible(w.reason)}`,
      );
  }
  if (p.held.length > 0 || p.unnamedFiles.length > 0) {
    lines.push("");
    for (const h of p.held)
      lines.push(`  ${c.yellow("!")} ${c.yellow("held".padEnd(13))} ${c.bold(h.cell.padEnd(width))}  ${heldReason(h)}`);
    for (const f of p.unnamedFiles)
      lines.push(
        `  ${c.yellow("!")} ${c.yellow("held".padEnd(13))} ${c.bold("?".padEnd(width))}  ${visible(f)} is quarantined; no cell could be named from it, and none it declares is created, changed or closed until it loads`,
      );
  }
  if (p.actions.length > 0) {
    lines.push("");
    const held = p.held.length > 0 ? ` ${heldCount}.` : "";
    lines.push(`${c.bold("Plan:")} ${summary(p.actions)}.${held}`);
  }
  return lines.join("\n");
}
