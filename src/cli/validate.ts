import { Command } from "commander";
import { loadConfig } from "../config/load.js";
import { hasErrors, sortDiagnostics } from "../config/diagnostics.js";
import { renderDiagnostics } from "../plan/render/text.js";
import { action, err, hostOptions, out, stderrColors, withCommon, type CommonOpts } from "./common.js";

export function validateCommand(): Command {
  return withCommon(new Command("validate"))
    .description("check cells.d/ against the schema and the rules; exit 0 when valid, 1 with diagnostics")
    .option("--json", "print {valid, cells, diagnostics} as JSON")
    .action(
      action(async (o: CommonOpts & { json?: boolean }) => {
        const { desired, diagnostics } = await loadConfig(o.config, { host: hostOptions(o), hostEnv: process.env });
        const diags = sortDiagnostics(diagnostics);
        const valid = !hasErrors(diags);
        if (o.json) {
          out(JSON.stringify({ valid, cells: [...desired.cells.keys()].sort(), diagnostics: diags }, null, 2));
        } else {
          if (diags.length > 0) err(renderDiagnostics(diags, stderrColors()));
          const n = desired.cells.size;
          if (valid)
            out(
              `Valid: ${n} cell${n === 1 ? "" : "s"} in ${desired.files.length} file${desired.files.length === 1 ? "" : "s"}.`,
            );
          else {
            const errors = diags.filter((d) => d.severity === "error");
            err(`Invalid: ${errors.length} error(s) in ${new Set(errors.map((d) => d.file)).size} file(s).`);
          }
        }
        return valid ? 0 : 1;
      }),
    );
}
