// `lazarus verify [CELL…]`: prove from inside each member's sandbox that the invariants hold.
import { Command } from "commander";
import { statePaths } from "../cells/layout.js";
import { resolveStateDir } from "../compute.js";
import { hostSettings } from "../host/settings.js";
import type { Colors } from "../plan/render/colors.js";
import { INVARIANTS, verifyCells, type CellReport } from "../verify/verify.js";
import { action, out, stdoutColors } from "./common.js";

export const VERIFY_FORMAT = 1;

// A table of invariant × cell, then the reason of every check that failed.
export function renderVerifyText(reports: CellReport[], c: Colors): string {
  if (reports.length === 0) return "No live cells to verify.";
  const w = Math.max(4, ...reports.map((r) => r.name.length));
  const lines = [`${"CELL".padEnd(w)}  ${"BACKEND".padEnd(8)}  ${INVARIANTS.join("  ")}`];
  for (const r of reports) {
    const marks = INVARIANTS.map((inv) =>
      r.checks.filter((x) => x.invariant === inv).every((x) => x.ok) ? `${c.green("✓")} ` : `${c.red("✗")} `,
    );
    lines.push(`${r.name.padEnd(w)}  ${r.backend.padEnd(8)}  ${marks.join("  ")}`);
  }
  const failed = reports.flatMap((r) =>
    r.checks
      .filter((x) => !x.ok)
      .map(
        (x) => `${r.name}  ${x.invariant}  ${c.red("✗")} ${x.check}${x.member ? ` (${x.member})` : ""}: ${x.detail}`,
      ),
  );
  if (failed.length) lines.push("", ...failed);
  else lines.push("", `All invariants hold for ${reports.length} cell${reports.length === 1 ? "" : "s"}.`);
  return lines.join("\n");
}

export function verifyCommand(): Command {
  return new Command("verify")
    .description(
      "prove, by probes run inside each member's own sandbox or container, that the cell invariants I1–I6 hold; exit 1 if any does not",
    )
    .argument("[cells...]", "only these cells (default: every live cell)")
    .option(
      "-s, --state-dir <dir>",
      "state directory (default $LAZARUS_STATE_DIR, else the spec's /tmp and ~/.lazarus paths)",
    )
    .option(
      "--json",
      "print {formatVersion, cells:[{name, backend, checks:[{invariant, check, member?, ok, detail}]}]}",
    )
    .action(
      action(async (cells: string[], o: { stateDir?: string; json?: boolean }) => {
        const paths = statePaths(resolveStateDir(o.stateDir));
        const reports = await verifyCells(paths, cells, hostSettings(process.env), process.env);
        if (o.json) out(JSON.stringify({ formatVersion: VERIFY_FORMAT, cells: reports }, null, 2));
        else out(renderVerifyText(reports, stdoutColors()));
        return reports.every((r) => r.checks.every((x) => x.ok)) ? 0 : 1;
      }),
    );
}
