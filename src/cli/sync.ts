import { Command } from "commander";
import { sortDiagnostics, visible } from "../config/diagnostics.js";
import { resolveStateDir } from "../compute.js";
import { DEFAULT_BUDGET, type Budget } from "../gitops/budget.js";
import { sync } from "../gitops/sync.js";
import { planToJson } from "../plan/render/json.js";
import { renderDiagnostics, renderPlanText } from "../plan/render/text.js";
import {
  action,
  err,
  hostOptions,
  out,
  stderrColors,
  stdoutColors,
  withLockTimeout,
  withParallelism,
} from "./common.js";
import { typedOption } from "./flags.js";
import { progress } from "./progress.js";

export interface BudgetOpts {
  maxClose: number;
  maxClosePercent: number;
}

export function budgetFrom(o: BudgetOpts): Budget {
  return { maxClose: o.maxClose, maxFraction: o.maxClosePercent / 100 };
}

// --max-close and --max-close-percent, typed (a bad value would otherwise switch the budget off).
export function withBudget(cmd: Command, prefix = ""): Command {
  return cmd
    .addOption(
      typedOption(
        "--max-close <n>",
        `${prefix}hold a revision that would close more cells than this`,
        { kind: "int", min: 0 },
        { value: DEFAULT_BUDGET.maxClose, shown: String(DEFAULT_BUDGET.maxClose) },
      ),
    )
    .addOption(
      typedOption(
        "--max-close-percent <p>",
        `${prefix}hold a revision that would close more than this percentage of the live cells`,
        { kind: "number", min: 0, max: 100 },
        { value: DEFAULT_BUDGET.maxFraction * 100, shown: String(DEFAULT_BUDGET.maxFraction * 100) },
      ),
    );
}

export function syncCommand(): Command {
  return withParallelism(withBudget(withLockTimeout(new Command("sync"))))
    .description("fetch a config repo, and apply the ref's commit whole (or nothing of it) within the deletion budget")
    .requiredOption("--repo <url|path>", "any git URL this machine's git can reach, a local path or a bare repo")
    .option("--ref <ref>", "branch, tag or commit", "main")
    .option("--path <subdir>", "the directory inside the repo that holds cells.d/ and portfolios/")
    .option("-s, --state-dir <dir>", "state directory (default $LAZARUS_STATE_DIR)")
    .option("--secrets-dir <dir>", "the only directory file credentials are read from (default $LAZARUS_SECRETS_DIR)")
    .option("--dry-run", "fetch, validate and plan; change nothing")
    .option("--allow-mass-close", "let a revision over the deletion budget through")
    .option("--now <time>", "as of this ISO-8601 time")
    .option("--json", "print the outcome as JSON")
    .option("--no-progress", "no progress line on stderr (it is only drawn on a terminal; also LAZARUS_NO_PROGRESS=1)")
    .action(
      action(
        async (
          o: BudgetOpts & {
            repo: string;
            ref: string;
            path?: string;
            stateDir?: string;
            dryRun?: boolean;
            allowMassClose?: boolean;
            now?: string;
            json?: boolean;
            lockTimeout: number;
            secretsDir?: string;
            parallelism: number;
            progress?: boolean;
          },
        ) => {
          const stateDir = resolveStateDir(o.stateDir);
          const bar = progress(o);
          bar.task(`fetching ${o.ref} of ${o.repo}`);
          const r = await sync({
            repo: o.repo,
            ref: o.ref,
            ...(o.path ? { subdir: o.path } : {}),
            ...(stateDir ? { stateDir } : {}),
            ...(o.now ? { now: o.now } : {}),
            ...(o.dryRun ? { dryRun: true } : {}),
            ...(o.allowMassClose ? { allowMassClose: true } : {}),
            budget: budgetFrom(o),
            lockTimeoutMs: o.lockTimeout,
            parallelism: o.parallelism,
            hostSettings: hostOptions(o),
            hooks: {
              planned: (actions) => bar.plan(actions),
              preApply: (a) => bar.start(a),
              postApply: (res) => bar.finish(res.action),
            },
          }).finally(() => bar.stop());
          if (o.json) {
            out(
              JSON.stringify(
                {
                  revision: r.revision,
                  subject: r.subject,
                  outcome: r.outcome,
                  detail: r.detail,
                  ...(r.plan ? { plan: planToJson(r.plan.plan, []) } : {}),
                  diagnostics: sortDiagnostics(r.diagnostics),
                },
                null,
                2,
              ),
            );
          } else {
            if (r.diagnostics.length > 0) err(renderDiagnostics(sortDiagnostics(r.diagnostics), stderrColors()));
            if (r.outcome === "dry-run" && r.plan) out(renderPlanText(r.plan.plan, stdoutColors()));
            out(visible(`${r.revision.slice(0, 12)} ${r.subject}: ${r.outcome}: ${r.detail}`)); // the subject is the committer's text
          }
          return r.outcome === "rejected" || r.outcome === "held" || r.outcome === "failed" ? 1 : 0;
        },
      ),
    );
}
