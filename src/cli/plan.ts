import { Command } from "commander";
import { hasErrors, sortDiagnostics } from "../config/diagnostics.js";
import { computePlan } from "../engine.js";
import { planToJson } from "../plan/render/json.js";
import { renderDiagnostics, renderPlanText } from "../plan/render/text.js";
import { action, engineOptions, err, out, stderrColors, stdoutColors, withCommon, type CommonOpts } from "./common.js";

export function planCommand(): Command {
  return withCommon(new Command("plan"))
    .description("show what apply would do (a dry run: nothing is changed)")
    .option("--json", "print the plan as JSON (formatVersion 1)")
    .option("--detailed-exitcode", "exit 0 when there are no changes, 2 when there are, 1 on error")
    .option("--now <time>", "plan as of this ISO-8601 time instead of the clock")
    .action(
      action(async (o: CommonOpts & { json?: boolean; detailedExitcode?: boolean; now?: string }) => {
        const { plan, diagnostics } = await computePlan(engineOptions(o));
        const diags = sortDiagnostics(diagnostics);
        if (o.json) out(JSON.stringify(planToJson(plan, diags), null, 2));
        else {
          if (diags.length > 0) err(renderDiagnostics(diags, stderrColors()));
          out(renderPlanText(plan, stdoutColors()));
        }
        if (hasErrors(diags)) return 1;
        return o.detailedExitcode && plan.actions.length > 0 ? 2 : 0;
      }),
    );
}
