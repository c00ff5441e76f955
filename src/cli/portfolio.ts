import { lstat, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { Command, Option } from "commander";
import { statePaths } from "../cells/layout.js";
import { loadConfig } from "../config/load.js";
import { formatDiagnostic, hasErrors } from "../config/diagnostics.js";
import { resolveNow, resolveStateDir } from "../compute.js";
import { readHealth, reportOutcome } from "../portfolio/health.js";
import { importLegacy } from "../portfolio/legacy.js";
import { nextModel, type Outcome } from "../portfolio/next.js";
import { resolvePortfolio, type Who } from "../portfolio/resolve.js";
import { ERROR_CLASSES, type ErrorClass, type Portfolio } from "../portfolio/types.js";
import { LazarusError } from "../util/errors.js";
import { action, err, hostOptions, out, withCommon, type CommonOpts } from "./common.js";
import { readJsonArg, readTextArg } from "./file-args.js";
import { typedOption } from "./flags.js";

interface WhoOpts extends CommonOpts {
  agent: string;
  taskClass?: string;
  cell?: string;
  now?: string;
}

function errorClass(flag: string, v: string): ErrorClass {
  if (!(ERROR_CLASSES as readonly string[]).includes(v))
    throw new LazarusError("BAD_FLAG", `${flag} "${v}" is not one of ${ERROR_CLASSES.join(", ")}`);
  return v as ErrorClass;
}

// importLegacy, with every error naming the file it came from.
function importLegacyNamed(file: string, text: string): ReturnType<typeof importLegacy> {
  try {
    return importLegacy(text);
  } catch (e) {
    throw new LazarusError("LEGACY_FORMAT", `${file}: ${(e instanceof Error ? e.message : String(e)).split("\n")[0]}`, {
      cause: e,
    });
  }
}

// The portfolios, and who is asking: with --cell, the member's own portfolio and task class count.
async function lookup(o: WhoOpts) {
  const { desired, diagnostics } = await loadConfig(o.config, { host: hostOptions(o), hostEnv: process.env });
  const broken = diagnostics.filter((d) => d.severity === "error" && d.file?.startsWith("portfolios/"));
  if (broken.length > 0)
    throw new LazarusError("PORTFOLIOS_INVALID", `portfolios/ has errors:\n${broken.map(formatDiagnostic).join("\n")}`);
  const who: Who = { agent: o.agent.replace(/^agent:/, "") };
  if (o.cell) {
    const member = desired.cells.get(o.cell)?.members.find((m) => m.identity === `agent:${who.agent}`);
    if (member?.portfolio) who.portfolio = member.portfolio;
    if (member?.taskClass) who.taskClass = member.taskClass;
  }
  if (o.taskClass) who.taskClass = o.taskClass;
  const resolved = resolvePortfolio(desired.portfolios, who);
  return { desired, who, resolved };
}

// Inside a cell, CELL_ID and CELL_HOME name the member's own cell.
function cellDirFor(stateDir: string | undefined, cell: string): string {
  if (process.env.CELL_ID === cell && process.env.CELL_HOME) return process.env.CELL_HOME;
  return path.join(statePaths(resolveStateDir(stateDir)).cells, cell);
}

const common = (c: Command, agentRequired = true): Command =>
  withCommon(c)
    [agentRequired ? "requiredOption" : "option"]("--agent <name>", "the agent (its name, or agent:<name>)")
    .option("--task-class <class>", "the task class")
    .option(
      "--cell <name>",
      "the cell the agent works in: its declared portfolio and task class, and the cell's shared model health",
    );

type ResolveOpts = Omit<WhoOpts, "agent"> & {
  agent?: string;
  portfolioFile?: string;
  attempt: number;
  afterError?: string;
  retryAfter?: number;
  needsContext?: number;
  needsTools?: boolean;
  json?: boolean;
};

// The portfolio to resolve from: the --portfolio-file given (inside a cell), or the one that
// applies to --agent in --config.
async function portfolioFor(o: ResolveOpts): Promise<{ portfolio: Omit<Portfolio, "source">; selector: string }> {
  if (o.portfolioFile) {
    const portfolio = (await readJsonArg(o.portfolioFile, "--portfolio-file")) as Omit<Portfolio, "source">;
    return { portfolio, selector: (portfolio as { selector?: string }).selector ?? "file" };
  }
  if (!o.agent)
    throw new LazarusError(
      "BAD_FLAG",
      "--agent is required (or --portfolio-file, set inside a cell by LAZARUS_PORTFOLIO)",
    );
  const { resolved } = await lookup({ ...o, agent: o.agent });
  if (!resolved)
    throw new LazarusError(
      "NO_PORTFOLIO",
      `no portfolio applies to agent ${o.agent}: declare one in portfolios/ (a portfolio named default applies to everyone)`,
    );
  return { portfolio: resolved.portfolio, selector: resolved.selector };
}

// portfolio resolve: the model for this attempt, given the cell's shared model health.
async function runResolve(o: ResolveOpts): Promise<number> {
  const { portfolio, selector } = await portfolioFor(o);
  const paths = statePaths(resolveStateDir(o.stateDir));
  const { now } = await resolveNow(paths, o.now, "show");
  const health = o.cell ? await readHealth(cellDirFor(o.stateDir, o.cell), (why) => err(`warning: ${why}`)) : [];
  const r = nextModel({
    portfolio,
    attempt: o.attempt,
    ...(o.afterError ? { afterError: errorClass("--after-error", o.afterError) } : {}),
    ...(o.retryAfter !== undefined ? { retryAfterMs: o.retryAfter * 1000 } : {}),
    ...(o.needsContext !== undefined ? { needsContext: o.needsContext } : {}),
    ...(o.needsTools ? { needsTools: true } : {}),
    health,
    now,
  });
  if (o.json) out(JSON.stringify({ portfolio: portfolio.name, selector, ...r }, null, 2));
  else if (r.ok) out(`${r.model.model} (${r.model.provider}): ${r.reason}`);
  else err(`error: ${r.reason}`);
  return r.ok ? 0 : 1;
}

function resolveCommand(): Command {
  return common(new Command("resolve"), false)
    .description("the model to use for this attempt, and why")
    .addOption(
      new Option(
        "--portfolio-file <file>",
        "a resolved portfolio.json to use instead of looking it up in --config (inside a cell: $LAZARUS_PORTFOLIO)",
      ).env("LAZARUS_PORTFOLIO"),
    )
    .addOption(
      typedOption(
        "--attempt <n>",
        "the attempt about to be made (1 = first)",
        { kind: "int", min: 1 },
        { value: 1, shown: "1" },
      ),
    )
    .option("--after-error <class>", `how the previous attempt failed: ${ERROR_CLASSES.join(", ")}`)
    .addOption(typedOption("--retry-after <seconds>", "what the provider asked to wait", { kind: "number", min: 0 }))
    .addOption(
      typedOption("--needs-context <tokens>", "skip models with a smaller context window", { kind: "int", min: 1 }),
    )
    .option("--needs-tools", "skip models without tool use")
    .option("--now <time>", "resolve as of this ISO-8601 time (cooldowns)")
    .option("--json", "print the result as JSON")
    .action(action(runResolve));
}

type ReportOpts = CommonOpts & { cell: string; model: string; outcome: string; agent?: string; now?: string };

// portfolio report: one call's outcome, appended to the live cell's shared model health.
async function runReport(o: ReportOpts): Promise<number> {
  const outcome = (o.outcome === "ok" ? "ok" : errorClass("--outcome", o.outcome)) as Outcome;
  const paths = statePaths(resolveStateDir(o.stateDir));
  const cellDir = cellDirFor(o.stateDir, o.cell);
  const { now } = await resolveNow(paths, o.now, "show");
  if (!(await lstat(path.join(cellDir, ".lazarus", "cell.json")).catch(() => undefined))?.isFile()) {
    throw new LazarusError("NO_SUCH_CELL", `no live cell named ${o.cell}; see lazarus status`);
  }
  await reportOutcome(cellDir, { time: now, model: o.model, outcome, ...(o.agent ? { member: o.agent } : {}) });
  return 0;
}

function reportCommand(): Command {
  return withCommon(new Command("report"))
    .description("record how a call to a model went, in the cell's shared model health")
    .requiredOption("--cell <name>", "the cell")
    .requiredOption("--model <model>", "the model called")
    .requiredOption("--outcome <outcome>", `ok, ${ERROR_CLASSES.join(", ")}`)
    .option("--agent <name>", "who called it")
    .option("--now <time>", "when (ISO-8601; default now)")
    .action(action(runReport));
}

// portfolio explain: which portfolio applies to the agent, and the selector that chose it.
async function runExplain(o: WhoOpts & { json?: boolean }): Promise<number> {
  const { who, resolved } = await lookup(o);
  if (o.json) {
    out(
      JSON.stringify(
        resolved
          ? {
              agent: who.agent,
              portfolio: resolved.portfolio.name,
              selector: resolved.selector,
              file: resolved.portfolio.source.file,
              models: resolved.portfolio.models.map((m) => m.model),
            }
          : { agent: who.agent, portfolio: null },
        null,
        2,
      ),
    );
    return resolved ? 0 : 1;
  }
  if (!resolved) {
    err(
      `no portfolio applies to agent ${who.agent}${who.taskClass ? ` (task class ${who.taskClass})` : ""}; a portfolio named default would`,
    );
    return 1;
  }
  const by = {
    member: `the member names it (portfolio: ${resolved.portfolio.name})`,
    agents: `appliesTo.agents names ${who.agent}`,
    taskClasses: `appliesTo.taskClasses holds ${who.taskClass}`,
    default: "it is the default (no other portfolio claims this agent or task class)",
  }[resolved.selector];
  out(
    `agent ${who.agent}: portfolio ${resolved.portfolio.name} (${resolved.portfolio.source.file}:${resolved.portfolio.source.line}), because ${by}`,
  );
  out(`  models: ${resolved.portfolio.models.map((m) => m.model).join(" → ")}`);
  return 0;
}

function explainCommand(): Command {
  return common(new Command("explain"))
    .description("which portfolio applies to an agent, and which selector chose it")
    .option("--json", "print the result as JSON")
    .action(action(runExplain));
}

// portfolio import: the legacy file converted, written without overwriting unless --force, then
// checked by loading --config again.
async function runImport(file: string, o: CommonOpts & { out?: string; force?: boolean }): Promise<number> {
  const { yaml, names } = importLegacyNamed(file, await readTextArg(file, "the legacy file"));
  const target = o.out ?? path.join(o.config, "portfolios", "imported.yaml");
  await mkdir(path.dirname(target), { recursive: true }).catch((e: NodeJS.ErrnoException) => {
    throw new LazarusError("WRITE_FAILED", `cannot create ${path.dirname(target)}/ for ${target}: ${e.message}`, {
      cause: e,
    });
  });
  await writeFile(target, yaml, { flag: o.force ? "w" : "wx" }).catch((e: NodeJS.ErrnoException) => {
    throw e.code === "EEXIST"
      ? new LazarusError("EXISTS", `${target} exists; pass --force to overwrite it or --out to write elsewhere`)
      : new LazarusError("WRITE_FAILED", `cannot write ${target}: ${e.message}`, { cause: e });
  });
  const { diagnostics } = await loadConfig(o.config).catch(() => ({ diagnostics: [] }));
  if (hasErrors(diagnostics.filter((d) => d.file === path.relative(o.config, target))))
    err(diagnostics.map(formatDiagnostic).join("\n"));
  out(`Wrote ${names.length} portfolios (${names.join(", ")}) to ${target}.`);
  return 0;
}

function importCommand(): Command {
  return withCommon(new Command("import"))
    .description("convert a legacy fallback-portfolios.yaml (agents:/role_classes:) into portfolios/")
    .argument("<file>", "the legacy file")
    .option("--out <file>", "where to write (default <config>/portfolios/imported.yaml)")
    .option("--force", "overwrite the output file")
    .action(action(runImport));
}

export function portfolioCommand(): Command {
  return new Command("portfolio")
    .description("fallback model portfolios: resolve, report, explain, import")
    .addCommand(resolveCommand())
    .addCommand(reportCommand())
    .addCommand(explainCommand())
    .addCommand(importCommand());
}
