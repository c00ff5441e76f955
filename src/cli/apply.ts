import path from "node:path";
import { createInterface } from "node:readline/promises";
import { statePaths } from "../cells/layout.js";
import { applySaved, resolveStateDir } from "../engine.js";
import { DEFAULT_BUDGET } from "../gitops/budget.js";
import { readGitopsStatus } from "../gitops/status.js";
import { approveRevision } from "../gitops/decide.js";
import { runningDaemon } from "../daemon/presence.js";
import { sync } from "../gitops/sync.js";
import { gitRevision } from "../gitops/revision.js";
import { SAVED_PLAN_FORMAT, type SavedPlan } from "../plan/saved.js";
import { LazarusError } from "../util/errors.js";
import { Command } from "commander";
import { hasErrors, sortDiagnostics, visible } from "../config/diagnostics.js";
import { runApply, type ApplyOutcome } from "../engine.js";
import { actionToJson } from "../plan/render/json.js";
import { actionLine, renderDiagnostics, renderPlanText } from "../plan/render/text.js";
import type { Colors } from "../plan/render/colors.js";
import type { ActionResult } from "../apply/apply.js";
import {
  action,
  engineOptions,
  err,
  hostOptions,
  out,
  stderrColors,
  stdoutColors,
  withCommon,
  withLockTimeout,
  withParallelism,
  type CommonOpts,
} from "./common.js";
import { typedOption } from "./flags.js";
import { readJsonArg } from "./file-args.js";
import { progress, type ProgressOptions } from "./progress.js";
import { publishLine } from "../forge/publish.js";

const SAVED_PLAN_MAX_BYTES = 256 * 1024 * 1024;

async function askYes(): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    const answer = await rl.question("\nDo you want to perform these actions? Only 'yes' will be accepted: ");
    return answer.trim() === "yes";
  } finally {
    rl.close();
  }
}

type ApplyOpts = CommonOpts &
  ProgressOptions & {
    yes?: boolean;
    json?: boolean;
    now?: string;
    stopTimeout: number;
    allowMassClose?: boolean;
    parallelism: number;
  };

export function applyCommand(): Command {
  return withParallelism(withLockTimeout(withCommon(new Command("apply"))))
    .description("converge the cells to the desired state")
    .option("-y, --yes", "do not ask for confirmation")
    .option("--json", "print the results as JSON")
    .option("--now <time>", "apply as of this ISO-8601 time instead of the clock (never earlier than recorded times)")
    .addOption(
      typedOption(
        "--stop-timeout <duration>",
        "how long a member has after SIGTERM before SIGKILL (plain numbers are milliseconds)",
        { kind: "duration", plainMs: true },
        { value: 10_000, shown: "10s" },
      ),
    )
    .option("--allow-mass-close", "let through the revision that the deletion budget held (see lazarus status)")
    .option("--no-progress", "no progress line on stderr (it is only drawn on a terminal; also LAZARUS_NO_PROGRESS=1)")
    .argument("[plan]", "a plan saved by lazarus plan --out: apply exactly its actions")
    .action(
      action(async (planFile: string | undefined, o: ApplyOpts) => {
        if (planFile) return applySavedPlan(planFile, o);
        const held = o.allowMassClose ? await applyHeldRevision(o) : undefined;
        if (held !== undefined) return held;
        return applyDesired(o);
      }),
    );
}

// --allow-mass-close with a revision the deletion budget held: approved for the running GitOps
// daemon, or synced here. Undefined when no revision is held (the apply goes on as usual).
async function applyHeldRevision(o: ApplyOpts): Promise<number | undefined> {
  const paths = statePaths(resolveStateDir(o.stateDir));
  const gitops = await readGitopsStatus(path.dirname(paths.ledger));
  if (!gitops?.held) return undefined;
  const holder = await runningDaemon(paths); // it holds the lock only while it reconciles
  if (holder?.command.startsWith("lazarus watch --repo")) {
    await approveRevision(path.dirname(paths.ledger), gitops.held.revision);
    out(
      `Approved ${gitops.held.revision.slice(0, 12)} (${gitops.held.closes.length} closes); the running daemon (pid ${holder.pid}) applies it at its next poll.`,
    );
    return 0;
  }
  const stateDir = resolveStateDir(o.stateDir);
  const r = await sync({
    repo: gitops.repo,
    ref: gitops.held.revision,
    ...(gitops.path ? { subdir: gitops.path } : {}),
    ...(stateDir ? { stateDir } : {}),
    ...(o.now ? { now: o.now } : {}),
    allowMassClose: true,
    budget: DEFAULT_BUDGET,
    parallelism: o.parallelism,
    ...(o.lockTimeout !== undefined ? { lockTimeoutMs: o.lockTimeout } : {}),
  });
  out(`${r.revision.slice(0, 12)} ${r.subject}: ${r.outcome}: ${r.detail}`);
  return r.outcome === "applied" || r.outcome === "unchanged" ? 0 : 1;
}

// Plan from cells.d, show the plan and ask (on a terminal, without --yes or --json), apply it with
// a line per result, then the summary.
async function applyDesired(o: ApplyOpts): Promise<number> {
  const c = stdoutColors();
  const interactive = Boolean(process.stdin.isTTY) && !o.yes && !o.json;
  const revision = await gitRevision(o.config); // a config in git: every ledger entry names its commit
  const bar = progress(o);
  const outcome = await runApply(
    {
      ...engineOptions(o),
      stopTimeoutMs: o.stopTimeout,
      parallelism: o.parallelism,
      ...(revision ? { revision } : {}),
    },
    {
      confirm: async ({ plan, diagnostics }) => {
        if (!o.json) {
          if (diagnostics.length > 0) err(renderDiagnostics(sortDiagnostics(diagnostics), stderrColors()));
          out(renderPlanText(plan, c));
        }
        const yes = interactive ? await askYes() : true;
        if (yes) bar.plan(plan.actions);
        return yes;
      },
      preApply: (a) => bar.start(a),
      postApply: (r) => {
        bar.finish(r.action);
        if (!o.json) bar.print(() => out(resultLine(r, c)));
      },
    },
  ).finally(() => bar.stop());
  if (!outcome) {
    out("Apply cancelled.");
    return 1;
  }
  return reportOutcome(outcome, o, c);
}

// After an apply: the results as JSON, the plan when there was nothing to do, or the summary line;
// then what was published. Exit code 1 when an action failed or was skipped, or on an error.
function reportOutcome(outcome: ApplyOutcome, o: ApplyOpts, c: Colors): number {
  const diags = sortDiagnostics(outcome.diagnostics);
  const failed = outcome.results.filter((r) => r.status !== "applied").length;
  if (o.json) {
    out(
      JSON.stringify(
        {
          formatVersion: 1,
          now: outcome.plan.now,
          results: outcome.results.map(resultToJson),
          held: outcome.plan.held,
          diagnostics: diags,
          publish: outcome.published,
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
  const published = publishLine(outcome.published);
  if (published && !o.json) err(published);
  return failed > 0 || hasErrors(diags) ? 1 : 0;
}

// One applied action, as a line and as JSON.
export function resultLine(r: ActionResult, c: Colors): string {
  const line = actionLine(r.action, c, Math.max(4, r.action.cell.length));
  if (r.status === "applied") return `${line}  ${c.green("done")}`;
  if (r.status === "failed") return `${line}  ${c.red(`failed: ${visible(r.error)}`)}`;
  return `${line}  ${c.dim(`skipped: ${visible(r.because)}`)}`;
}

export function resultToJson(r: ActionResult): Record<string, unknown> {
  return {
    ...actionToJson(r.action),
    status: r.status,
    ...(r.status === "failed" ? { error: r.error } : {}),
    ...(r.status === "skipped" ? { error: r.because } : {}),
  };
}

async function applySavedPlan(
  file: string,
  o: CommonOpts & ProgressOptions & { json?: boolean; now?: string; stopTimeout: number; parallelism: number },
): Promise<number> {
  // Read as any file named on the command line is: a regular file only (a FIFO never blocks),
  // capped (a plan of 10,000 cells is a few MB), strict UTF-8.
  const saved = (await readJsonArg(file, "saved plan", SAVED_PLAN_MAX_BYTES)) as SavedPlan;
  if (
    saved === null ||
    typeof saved !== "object" ||
    saved.kind !== "lazarus-plan" ||
    saved.formatVersion !== SAVED_PLAN_FORMAT
  )
    throw new LazarusError(
      "BAD_PLAN",
      `${file} is not a plan saved by lazarus plan --out (formatVersion ${SAVED_PLAN_FORMAT})`,
    );
  const c = stdoutColors();
  const stateDir = resolveStateDir(o.stateDir);
  const bar = progress(o);
  bar.plan(saved.actions);
  const r = await applySaved(
    saved,
    {
      ...(stateDir ? { stateDir } : {}),
      ...(o.now ? { now: o.now } : {}),
      stopTimeoutMs: o.stopTimeout,
      parallelism: o.parallelism,
      hostSettings: hostOptions(o),
      ...(o.lockTimeout !== undefined ? { lockTimeoutMs: o.lockTimeout } : {}),
    },
    {
      preApply: (a) => bar.start(a),
      postApply: (res) => {
        bar.finish(res.action);
        if (!o.json) bar.print(() => out(resultLine(res, c)));
      },
    },
  ).finally(() => bar.stop());
  const failed = r.results.filter((x) => x.status !== "applied").length;
  const published = r.published ? publishLine(r.published) : undefined;
  if (published && !o.json) err(published);
  if (o.json) {
    out(
      JSON.stringify(
        { formatVersion: 1, revision: r.revision, stale: r.stale, results: r.results.map(resultToJson) },
        null,
        2,
      ),
    );
  } else {
    if (saved.actions.length === 0) out("The saved plan has no changes; nothing was touched.");
    for (const cell of r.stale)
      err(c.red(`refused: cell ${cell} changed since the plan was made (stale plan); run lazarus plan again`));
    if (saved.actions.length > 0)
      out(
        `\nApplied ${r.results.length - failed} of ${saved.actions.length} planned actions from revision ${r.revision}${r.stale.length ? `; refused ${r.stale.length} stale cell(s)` : ""}.`,
      );
  }
  return failed > 0 || r.stale.length > 0 ? 1 : 0;
}
