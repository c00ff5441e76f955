import { createInterface } from "node:readline/promises";
import { Command } from "commander";
import { hasErrors, sortDiagnostics } from "../config/diagnostics.js";
import { runApply } from "../engine.js";
import { actionToJson } from "../plan/render/json.js";
import { actionLine, renderDiagnostics, renderPlanText } from "../plan/render/text.js";
import { action, engineOptions, err, out, stderrColors, stdoutColors, withCommon, type CommonOpts } from "./common.js";

async function askYes(): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    const answer = await rl.question("\nDo you want to perform these actions? Only 'yes' will be accepted: ");
    return answer.trim() === "yes";
  } finally {
    rl.close();
  }
}

export function applyCommand(): Command {
  return withCommon(new Command("apply"))
    .description("converge the cells to the desired state")
    .option("-y, --yes", "do not ask for confirmation")
    .option("--json", "print the results as JSON")
    .option("--now <time>", "apply as of this ISO-8601 time instead of the clock (never earlier than recorded times)")
    .option("--stop-timeout <ms>", "how long a member has after SIGTERM before SIGKILL", "10000")
    .action(
      action(async (o: CommonOpts & { yes?: boolean; json?: boolean; now?: string; stopTimeout: string }) => {
        const c = stdoutColors();
        const interactive = Boolean(process.stdin.isTTY) && !o.yes && !o.json;
        const outcome = await runApply(
          { ...engineOptions(o), stopTimeoutMs: Number(o.stopTimeout) },
          {
            confirm: async ({ plan, diagnostics }) => {
              if (!o.json) {
                if (diagnostics.length > 0) err(renderDiagnostics(sortDiagnostics(diagnostics), stderrColors()));
                out(renderPlanText(plan, c));
              }
              return interactive ? askYes() : true;
            },
            postApply: (r) => {
              if (o.json) return;
              const width = Math.max(4, r.action.cell.length);
              const line = actionLine(r.action, c, width);
              if (r.status === "applied") out(`${line}  ${c.green("done")}`);
              else if (r.status === "failed") out(`${line}  ${c.red(`failed: ${r.error}`)}`);
              else out(`${line}  ${c.dim(`skipped: ${r.because}`)}`);
            },
          },
        );
        if (!outcome) {
          out("Apply cancelled.");
          return 1;
        }
        const diags = sortDiagnostics(outcome.diagnostics);
        const failed = outcome.results.filter((r) => r.status !== "applied").length;
        if (o.json) {
          out(
            JSON.stringify(
              {
                formatVersion: 1,
                now: outcome.plan.now,
                results: outcome.results.map((r) => ({ ...actionToJson(r.action), status: r.status, ...(r.status === "failed" ? { error: r.error } : {}), ...(r.status === "skipped" ? { error: r.because } : {}) })),
                held: outcome.plan.held,
                diagnostics: diags,
              },
              null,
              2,
            ),
          );
        } else if (outcome.plan.actions.length === 0) {
          if (diags.length > 0) err(renderDiagnostics(diags, stderrColors()));
          out(renderPlanText(outcome.plan, c));
        } else {
          out(`\nApply complete: ${outcome.results.length - failed} applied, ${failed} failed or skipped.`);
        }
        return failed > 0 || hasErrors(diags) ? 1 : 0;
      }),
    );
}
