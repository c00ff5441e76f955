import path from "node:path";
import { Command } from "commander";
import { gitRevision } from "../gitops/revision.js";
import { renderPlanMarkdown } from "../plan/render/markdown.js";
import { contentRevision, savePlan } from "../plan/saved.js";
import { writeJsonAtomic } from "../util/fsx.js";
import { LazarusError } from "../util/errors.js";
import { hasErrors, sortDiagnostics } from "../config/diagnostics.js";
import { computePlan } from "../compute.js";
import { planToJson } from "../plan/render/json.js";
import { renderDiagnostics, renderPlanText } from "../plan/render/text.js";
import { forgeTable, publicationOf } from "../forge/table.js";
import { pushWords } from "../forge/push-of.js";
import type { CellRecord } from "../cells/record.js";
import { action, engineOptions, err, out, stderrColors, stdoutColors, withCommon, type CommonOpts } from "./common.js";

export function planCommand(): Command {
  return withCommon(new Command("plan"))
    .description("show what apply would do (a dry run: nothing is changed)")
    .option("--json", "print the plan as JSON (formatVersion 1)")
    .option("--detailed-exitcode", "exit 0 when there are no changes, 2 when there are, 1 on error")
    .option("--now <time>", "plan as of this ISO-8601 time instead of the clock")
    .option("--format <format>", "text, json or markdown (a pull-request comment)", "text")
    .option(
      "--out <file>",
      "save the plan (with the desired revision and the observed fingerprints) for `lazarus apply FILE`",
    )
    .action(
      action(
        async (
          o: CommonOpts & { json?: boolean; detailedExitcode?: boolean; now?: string; format: string; out?: string },
        ) => {
          const format = o.json ? "json" : o.format;
          if (!["text", "json", "markdown"].includes(format))
            throw new LazarusError("BAD_FLAG", `--format "${o.format}" is not text, json or markdown`);
          const gitRev = gitRevision(o.config); // git runs while the config is read
          const { plan, diagnostics, desired, observed } = await computePlan(engineOptions(o));
          const diags = sortDiagnostics(diagnostics);
          const revision = (await gitRev) ?? contentRevision(desired);
          if (o.out) {
            await writeJsonAtomic(o.out, savePlan(plan, observed, revision, path.resolve(o.config)));
            err(
              `Saved the plan (${plan.actions.length} action${plan.actions.length === 1 ? "" : "s"}, revision ${revision}) to ${o.out}; apply it with: lazarus apply ${o.out}`,
            );
          }
          const pubs = publications(
            [...desired.cells.values()].map((c) => ({
              name: c.name,
              project: c.project,
              backend: c.backend,
              ...(c.push ? { push: c.push } : {}),
            })),
          );
          if (format === "json")
            out(
              JSON.stringify(
                { ...(planToJson(plan, diags) as object), revision, ...(pubs ? { publication: pubs.json } : {}) },
                null,
                2,
              ),
            );
          else if (format === "markdown") out(renderPlanMarkdown(plan, diags, revision));
          else {
            if (diags.length > 0) err(renderDiagnostics(diags, stderrColors()));
            out(renderPlanText(plan, stdoutColors()));
            if (pubs) out(pubs.text);
          }
          if (hasErrors(diags)) return 1;
          return o.detailedExitcode && plan.actions.length > 0 ? 2 : 0;
        },
      ),
    );
}

// Where each declared cell's comments go (only on a host with a forge table): text and JSON.
function publications(
  cells: Pick<CellRecord, "name" | "project" | "backend" | "push">[],
): { text: string; json: Record<string, unknown> } | undefined {
  const forges = forgeTable(process.env);
  if (forges.length === 0 || cells.length === 0) return undefined;
  const json: Record<string, unknown> = {};
  const lines = ["", "Publication (LAZARUS_FORGES):"];
  for (const c of [...cells].sort((a, b) => a.name.localeCompare(b.name))) {
    const p = publicationOf(forges, c.project);
    lines.push(`  ${c.name}: ${p.publishes ? `publishes to ${p.where}` : p.why}`);
    const push = pushWords(c, forges);
    if (push) lines.push(`  ${c.name}: ${push}`);
    json[c.name] = {
      ...(p.publishes
        ? { publishes: true, forge: { kind: p.forge.kind, url: p.forge.url }, issue: p.issue }
        : { publishes: false, why: p.why }),
      ...(push ? { push } : {}),
    };
  }
  return { text: lines.join("\n"), json };
}
