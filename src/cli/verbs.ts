// The operator verbs: summon, team, invite, close, destroy. Each is sugar over desired state: it
// writes or edits one cell of one cells.d/ file (see src/config/edit.ts), prints the change as a
// unified diff, and writes it atomically. --dry-run writes nothing; --commit commits just that
// file; --apply then converges that one cell, as `lazarus apply` would.
import { randomBytes } from "node:crypto";
import { link, lstat, open, stat, unlink } from "node:fs/promises";
import { userInfo } from "node:os";
import path from "node:path";
import { Argument, Command, Option } from "commander";
import { FILE_HEADERS_ONLY, createTwoFilesPatch } from "diff";
import { formatDiagnostic, hasErrors, sortDiagnostics, type Diagnostic } from "../config/diagnostics.js";
import {
  EditRefused,
  cellMembers,
  editCellText,
  newCellText,
  specValue,
  type CellEdit,
  type NewMember,
} from "../config/edit.js";
import { parseDuration } from "../config/durations.js";
import { configFiles } from "../config/files.js";
import { statePaths } from "../cells/layout.js";
import { checkFileText, combine, loadCellFile, salvageNames, type FileResult } from "../config/load.js";
import { readSource } from "../config/source.js";
import { ROLES } from "../config/types.js";
import { resolveStateDir, runApply } from "../engine.js";
import { gitRevision } from "../gitops/revision.js";
import { renderDiagnostics, renderPlanText } from "../plan/render/text.js";
import type { Colors } from "../plan/render/colors.js";
import { LazarusError, errorMessage, isErrno } from "../util/errors.js";
import { execa } from "../util/exec.js";
import { syncDir, tempName, writeFileAtomic, writeFully } from "../util/fsx.js";
import { resultLine, resultToJson } from "./apply.js";
import {
  action,
  engineOptions,
  err,
  out,
  stderrColors,
  stdoutColors,
  withCommon,
  withLockTimeout,
  withParallelism,
  type CommonOpts,
} from "./common.js";
import { typedOption } from "./flags.js";

interface VerbOpts extends CommonOpts {
  dryRun?: boolean;
  apply?: boolean;
  commit?: boolean;
  message?: string;
  json?: boolean;
  yes?: boolean;
  stopTimeout: number;
  parallelism: number;
}

// What a verb changes: one file, from before (undefined: a new file) to after.
interface Change {
  verb: string;
  cell: string;
  rel: string; // the file, relative to the config dir
  before: string | undefined;
  after: string;
  what: string; // one line for people, e.g. "state: closed"
}

const IDENTITY = /^(agent|bot|human):[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

// An identity as given: kind:name, or a bare name taken as kind (agent: by default).
export function identityOf(text: string, kind = "agent"): string {
  const id = text.includes(":") ? text : `${kind}:${text}`;
  if (!IDENTITY.test(id))
    throw new LazarusError(
      "BAD_IDENTITY",
      `"${text}" is not an identity: use <agent|bot|human>:<name>, e.g. agent:allegro (a name is letters, digits, '_', '.', '-', at most 63)`,
    );
  return id;
}

function roleOf(text: string): string {
  if (!(ROLES as readonly string[]).includes(text))
    throw new LazarusError("BAD_ROLE", `"${text}" is not a role: use one of ${ROLES.join(", ")}`);
  return text;
}

// The name a summoned cell gets from its project, as the example cells are named: the repository
// and the issue (Timmy_Foundation/timmy-config#262 → timmy-config-262), as a DNS label. A project
// with nothing usable gets the seed's laz-<8 hex>.
export function cellNameFor(project: string): string {
  const tail = project.slice(project.lastIndexOf("/") + 1);
  const name = tail
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 63)
    .replace(/-+$/, "");
  return DNS_LABEL.test(name) ? name : `laz-${randomBytes(4).toString("hex")}`;
}

// The config dir's cells.d/ files, loaded as `lazarus validate` loads them (credentials aside:
// an edit needs the file's shape, not the secrets behind it).
async function loadCells(
  configDir: string,
): Promise<{ results: FileResult[]; texts: Map<string, string>; diagnostics: Diagnostic[] }> {
  const { files } = await configFiles(configDir, "cells.d");
  const results: FileResult[] = [];
  const texts = new Map<string, string>();
  for (const rel of files) {
    const l = await loadCellFile(configDir, rel);
    if (!l) continue;
    results.push(l.result);
    if (l.text !== undefined) texts.set(rel, l.text);
  }
  return { results, texts, diagnostics: combine(results, texts).diagnostics };
}

function refusal(file: string, why: string, diags: Diagnostic[]): LazarusError {
  const lines = sortDiagnostics(diags.filter((d) => d.severity === "error")).map((d) => `  ${formatDiagnostic(d)}`);
  return new LazarusError(
    "FILE_BROKEN",
    `${why}; fix ${file} first (lazarus validate shows it), nothing was written:\n${lines.join("\n")}`,
  );
}

// The file that declares the cell, with its text; refused when that file (or the name) is in trouble.
async function locate(configDir: string, cell: string): Promise<{ rel: string; text: string }> {
  const { results, texts, diagnostics } = await loadCells(configDir);
  const declaring = results.filter((r) => r.cells.some((c) => c.name === cell));
  const salvaged = results.filter(
    (r) => hasErrors(r.diagnostics) && !declaring.includes(r) && salvageNames(texts.get(r.file) ?? "").includes(cell),
  );
  if (declaring.length + salvaged.length > 1) {
    const where = [...declaring, ...salvaged].map((r) => r.file).join(", ");
    throw new LazarusError(
      "CELL_DECLARED_TWICE",
      `cell ${cell} is declared in more than one place (${where}); declare it once, then run again; nothing was written`,
    );
  }
  const found = declaring[0] ?? salvaged[0];
  if (!found) {
    const names = results.flatMap((r) => r.cells.map((c) => c.name)).sort();
    throw new LazarusError(
      "NO_SUCH_CELL",
      `no cell named ${cell} is declared in ${path.join(configDir, "cells.d")}/ (declared: ${names.join(", ") || "none"}); check the name, or summon it`,
    );
  }
  const errors = [
    ...found.diagnostics,
    ...diagnostics.filter((d) => d.file === found.file && !found.diagnostics.includes(d)),
  ];
  if (hasErrors(errors)) throw refusal(found.file, `${found.file}, which declares cell ${cell}, fails to load`, errors);
  const text = texts.get(found.file);
  if (text === undefined)
    throw new LazarusError("FILE_UNREADABLE", `${found.file} cannot be read; nothing was written`);
  return { rel: found.file, text };
}

// An edit of a declared cell, or a refusal that says why at the line of the file.
async function editChange(
  o: VerbOpts,
  verb: string,
  cell: string,
  what: string,
  edits: (text: string) => CellEdit[],
): Promise<Change> {
  const { rel, text } = await locate(o.config, cell);
  let after = text;
  try {
    for (const e of edits(text)) after = editCellText(rel, after, cell, e).text;
  } catch (e) {
    if (e instanceof EditRefused)
      throw refusal(
        rel,
        `${verb}: the change would make ${rel} fail to load (lines as they would be after it)`,
        e.diagnostics,
      );
    throw e;
  }
  return { verb, cell, rel, before: text, after, what };
}

// The change as a unified diff (git's a/ and b/ names; /dev/null for a new file).
function unifiedDiff(c: Change): string {
  if (c.before === c.after) return "";
  return createTwoFilesPatch(
    c.before === undefined ? "/dev/null" : `a/${c.rel}`,
    `b/${c.rel}`,
    c.before ?? "",
    c.after,
    undefined,
    undefined,
    { context: 3, headerOptions: FILE_HEADERS_ONLY },
  );
}

function colorDiff(diff: string, c: Colors): string {
  return diff
    .split("\n")
    .map((l) =>
      l.startsWith("+++") || l.startsWith("---")
        ? c.bold(l)
        : l.startsWith("+")
          ? c.green(l)
          : l.startsWith("-")
            ? c.red(l)
            : l.startsWith("@@")
              ? c.cyan(l)
              : l,
    )
    .join("\n");
}

// A new file, created atomically and never over an existing one: link(2) fails when the name is taken.
async function createExclusive(file: string, text: string): Promise<void> {
  const tmp = tempName(file);
  const fh = await open(tmp, "wx", 0o644);
  try {
    await writeFully(fh, Buffer.from(text));
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await link(tmp, file);
  } catch (e) {
    if (isErrno(e, "EEXIST"))
      throw new LazarusError(
        "FILE_EXISTS",
        `${file} already exists; it was left as it is (pass --name to summon under another name)`,
      );
    throw e;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  await syncDir(path.dirname(file));
}

// Write the change: a new file exclusively, an edited one by atomic replace, and only when it
// still holds what was read (an edit made meanwhile is never overwritten).
async function writeChange(configDir: string, c: Change): Promise<void> {
  const file = path.join(configDir, c.rel);
  if (c.before === undefined) return createExclusive(file, c.after);
  const now = await readSource(configDir, c.rel);
  if (now.kind !== "text" || now.text !== c.before)
    throw new LazarusError(
      "FILE_CHANGED",
      `${c.rel} changed while it was being edited; nothing was written; run the command again`,
    );
  const st = await lstat(file);
  if (st.isSymbolicLink())
    throw new LazarusError(
      "FILE_IS_LINK",
      `${c.rel} is a symbolic link; replacing it would cut the link, so nothing was written; edit the file it points to`,
    );
  await writeFileAtomic(file, c.after, st.mode & 0o7777);
}

async function git(args: string[], cwd: string): Promise<string> {
  try {
    const r = await execa("git", args, { cwd, stdin: "ignore", env: { GIT_TERMINAL_PROMPT: "0" } });
    return r.stdout.trim();
  } catch (e) {
    const stderr = (e as { stderr?: string }).stderr?.trim();
    throw new LazarusError("GIT_FAILED", `git ${args.join(" ")} failed: ${stderr || errorMessage(e)}`, { cause: e });
  }
}

// Where --commit will commit: the repository holding the config dir (checked before anything is written).
async function gitTop(configDir: string): Promise<string> {
  try {
    return await git(["rev-parse", "--show-toplevel"], configDir);
  } catch {
    throw new LazarusError(
      "NOT_A_REPO",
      `--commit: ${path.resolve(configDir)} is not inside a git repository; run without --commit, or git init it; nothing was written`,
    );
  }
}

// Commit just this file (rel to the config dir, where git runs): staged changes to other files
// stay staged and out of the commit (--only).
async function commitFile(configDir: string, rel: string, message: string): Promise<string> {
  await git(["add", "--", rel], configDir);
  await git(["commit", "--quiet", "--only", "-m", message, "--", rel], configDir);
  return git(["rev-parse", "HEAD"], configDir);
}

// The answer on stdin to a yes/no question (undefined at end of input).
async function readAnswer(): Promise<string | undefined> {
  process.stdin.setEncoding("utf8");
  let buf = "";
  for await (const chunk of process.stdin) {
    buf += chunk as string;
    const nl = buf.indexOf("\n");
    if (nl >= 0) return buf.slice(0, nl);
  }
  return buf === "" ? undefined : buf;
}

// Run a verb's change: show it, confirm it (destroy), write it, commit it, apply it.
async function runVerb(o: VerbOpts, c: Change, confirm?: string): Promise<number> {
  if (o.dryRun && (o.apply || o.commit))
    throw new LazarusError("BAD_FLAGS", "--dry-run writes nothing, so it cannot be used with --apply or --commit");
  if (o.message !== undefined && !o.commit)
    throw new LazarusError("BAD_FLAGS", "-m/--message is the commit message: use it with --commit");
  const inRepo = o.commit ? await gitTop(o.config) : undefined;
  const diff = unifiedDiff(c);
  const changed = c.before !== c.after;
  const result: Record<string, unknown> = {
    formatVersion: 1,
    verb: c.verb,
    cell: c.cell,
    file: c.rel,
    created: c.before === undefined,
    changed,
    written: false,
    dryRun: Boolean(o.dryRun),
    diff,
  };
  if (!o.json) {
    if (changed) out(colorDiff(diff.replace(/\n$/, ""), stdoutColors()));
    else err(`${c.rel}: cell ${c.cell} already has ${c.what}; nothing to change`);
  }
  if (o.dryRun) {
    if (o.json) out(JSON.stringify(result, null, 2));
    else if (changed) err(`dry run: ${c.rel} was not written`);
    return 0;
  }
  if (confirm && changed && !o.yes) {
    const ec = stderrColors();
    process.stderr.write(
      `\n${ec.red(confirm)}\n${ec.bold("Do you really want to destroy it? Only 'yes' will be accepted: ")}`,
    );
    const answer = await readAnswer();
    if (answer?.trim() !== "yes") {
      err(
        answer === undefined
          ? "\nno answer on stdin; destroy cancelled, nothing was written (pass --yes to confirm without a prompt)"
          : "destroy cancelled; nothing was written",
      );
      if (o.json) out(JSON.stringify({ ...result, cancelled: true }, null, 2));
      return 1;
    }
  }
  if (changed) {
    await writeChange(o.config, c);
    result.written = true;
    if (!o.json) err(`${c.before === undefined ? "created" : "wrote"} ${c.rel}`);
    if (inRepo) {
      const subject = o.message ?? `lazarus ${c.verb} ${c.cell}: ${c.what}`;
      const message = o.message ? `${subject}\n\nlazarus ${c.verb} ${c.cell}: ${c.what}` : subject;
      const sha = await commitFile(o.config, c.rel, message);
      result.commit = sha;
      if (!o.json) err(`committed ${c.rel} as ${sha.slice(0, 12)}`);
    }
  }
  let code = 0;
  if (o.apply) code = await applyCell(o, c.cell, c.rel, result);
  if (o.json) out(JSON.stringify(result, null, 2));
  else if (!o.apply && changed) err("run lazarus apply (or pass --apply) to make it so");
  return code;
}

// Converge the one cell the verb changed (the other cells are not planned).
async function applyCell(o: VerbOpts, cell: string, rel: string, result: Record<string, unknown>): Promise<number> {
  const c = stdoutColors();
  const revision = await gitRevision(o.config);
  const outcome = await runApply(
    {
      ...engineOptions(o),
      only: new Set([cell]),
      stopTimeoutMs: o.stopTimeout,
      parallelism: o.parallelism,
      ...(revision ? { revision } : {}),
    },
    {
      confirm: async ({ plan, diagnostics }) => {
        if (!o.json) {
          // Errors anywhere (a quarantined file is worth knowing about), warnings of this cell's file only.
          const mine = diagnostics.filter((d) => d.severity === "error" || d.file === undefined || d.file === rel);
          if (mine.length > 0) err(renderDiagnostics(sortDiagnostics(mine), stderrColors()));
          out(`\n${renderPlanText(plan, c)}`);
        }
        return true;
      },
      postApply: (r) => {
        if (!o.json) out(resultLine(r, c));
      },
    },
    `lazarus ${String(result.verb)} --apply`,
  );
  if (!outcome) return 1;
  const failed = outcome.results.filter((r) => r.status !== "applied").length;
  result.apply = { now: outcome.plan.now, results: outcome.results.map(resultToJson) };
  if (!o.json && outcome.plan.actions.length === 0) out(`\n${renderPlanText(outcome.plan, c)}`);
  else if (!o.json) out(`\nApply complete: ${outcome.results.length - failed} applied, ${failed} failed or skipped.`);
  return failed > 0 ? 1 : 0;
}

// The flags every verb shares.
function verbCommand(name: string): Command {
  return withParallelism(withLockTimeout(withCommon(new Command(name))))
    .option("--dry-run", "print the diff and write nothing")
    .option("--apply", "after writing, converge this cell now (as lazarus apply does, for this cell only)")
    .option("--commit", "commit the file (and only it) to the git repository holding the config dir")
    .option("-m, --message <text>", "the commit message of --commit (default: lazarus <verb> <cell>: <what changed>)")
    .option("--json", "print what changed as JSON (file, diff, commit, apply results)")
    .addOption(
      typedOption(
        "--stop-timeout <duration>",
        "with --apply: how long a member has after SIGTERM before SIGKILL",
        { kind: "duration", plainMs: true },
        { value: 10_000, shown: "10s" },
      ),
    );
}

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

function defaultOwner(): string | undefined {
  try {
    const id = `human:${userInfo().username}`;
    return IDENTITY.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

export function summonCommand(): Command {
  return verbCommand("summon")
    .description("declare a new cell for a project: writes cells.d/<name>.yaml (never over an existing file or cell)")
    .argument("<project>", "the cell's project target, e.g. Org/repo#123")
    .argument(
      "[command...]",
      "after --: the program and arguments the agents run (without one, each is invited and joins with lazarus accept)",
    )
    .addOption(
      new Option(
        "--agent <identity>",
        "a member, repeatable: agent:NAME, bot:NAME, human:NAME or a bare NAME (taken as agent:NAME)",
      ).argParser(collect),
    )
    .option("--role <role>", `the agents' role: ${ROLES.join(", ")}`, "executor")
    .option("--name <cell>", "the cell's name (default: from the project, Org/repo#123 → repo-123)")
    .option("--owner <identity>", "who owns the cell (default: human:<your user name>)")
    .option("--ttl <duration>", "active lifetime, e.g. 4h (default 4h, at most 24h)")
    .option("--backend <backend>", "process (default), sandbox or container")
    .addHelpText(
      "after",
      "\nExample:\n  lazarus summon Timmy_Foundation/timmy-config#262 --agent allegro --ttl 2h --apply -- node ./agents/allegro.mjs",
    )
    .action(action(runSummon));
}

type SummonOpts = VerbOpts & {
  agent?: string[];
  role: string;
  name?: string;
  owner?: string;
  ttl?: string;
  backend?: string;
};

// The new cell's name, owner and members, from the flags (each checked, with what to pass instead).
function summonedCell(project: string, command: string[], o: SummonOpts) {
  const agents = o.agent ?? [];
  if (agents.length === 0)
    throw new LazarusError("BAD_FLAGS", "summon needs at least one --agent, e.g. --agent allegro");
  const role = roleOf(o.role);
  const owner = o.owner !== undefined ? identityOf(o.owner, "human") : defaultOwner();
  if (!owner) throw new LazarusError("BAD_FLAGS", "cannot make an owner from your user name; pass --owner human:NAME");
  const name = o.name ?? cellNameFor(project);
  if (!DNS_LABEL.test(name))
    throw new LazarusError(
      "BAD_NAME",
      `"${name}" is not a cell name: use a DNS label (lowercase letters, digits and '-', at most 63 characters)`,
    );
  const members: NewMember[] = agents.map((a) => ({
    identity: identityOf(a),
    role,
    ...(command.length > 0 ? { command } : {}),
  }));
  return { name, owner, role, members };
}

const exists = (file: string): Promise<boolean> =>
  stat(file).then(
    () => true,
    () => false,
  );

// Summon never takes over a name: refused when a cells.d/ file declares it (even one that does not
// load), when a cell of that name is still on disk (live, or closed within its grace: the new
// declaration would resurrect it with its old files), or when the file it would write exists.
async function refuseTakenName(o: SummonOpts, name: string, rel: string): Promise<void> {
  const { results, texts } = await loadCells(o.config);
  const taken = results.find(
    (r) => r.cells.some((c) => c.name === name) || salvageNames(texts.get(r.file) ?? "").includes(name),
  );
  if (taken)
    throw new LazarusError(
      "CELL_EXISTS",
      `cell ${name} is already declared in ${taken.file}; nothing was written (edit it with team/invite/close, or pass --name)`,
    );
  const paths = statePaths(resolveStateDir(o.stateDir));
  for (const [place, dir] of [
    ["live", paths.cells],
    ["in the graveyard", paths.graveyard],
  ] as const) {
    if (await exists(path.join(dir, name)))
      throw new LazarusError(
        "CELL_EXISTS",
        `a cell named ${name} is still ${place} (${path.join(dir, name)}; see lazarus status ${name}); nothing was written (pass --name, or wait until it is scrubbed)`,
      );
  }
  if (results.some((r) => r.file === rel) || (await exists(path.join(o.config, rel))))
    throw new LazarusError(
      "FILE_EXISTS",
      `${rel} already exists; nothing was written (pass --name to summon under another name)`,
    );
}

// summon: a new cells.d/<name>.yaml for the project, checked as validate would before it is written.
async function runSummon(project: string, command: string[], o: SummonOpts): Promise<number> {
  const { name, owner, role, members } = summonedCell(project, command, o);
  const rel = `cells.d/${name}.yaml`;
  await refuseTakenName(o, name, rel);
  const text = newCellText({
    name,
    project,
    owner,
    ...(o.backend ? { backend: o.backend } : {}),
    ...(o.ttl ? { ttl: o.ttl } : {}),
    members,
  });
  const check = await checkFileText(rel, text); // as validate would see it, this host included
  if (hasErrors(check.diagnostics)) throw refusal(rel, `summon: the new cell would not load`, check.diagnostics);
  const who = members.map((m) => m.identity).join(", ");
  return runVerb(o, {
    verb: "summon",
    cell: name,
    rel,
    before: undefined,
    after: text,
    what: `${project} with ${who} as ${role}`,
  });
}

// remove or add one member; add refuses a member already there (a role change is a removal, then an invitation).
async function memberChange(
  o: VerbOpts,
  verb: string,
  cell: string,
  op: "add" | "remove",
  identity: string,
  role: string | undefined,
  command: string[],
): Promise<Change> {
  const what = op === "add" ? `${identity} joins as ${role ?? "?"}` : `${identity} leaves`;
  return editChange(o, verb, cell, what, (text) => {
    const members = cellMembers(text, cell);
    const there = members.find((m) => m.identity === identity);
    if (op === "remove") {
      if (!there)
        throw new LazarusError(
          "NO_SUCH_MEMBER",
          `cell ${cell} has no member ${identity} (members: ${members.map((m) => `${m.identity} (${m.role})`).join(", ") || "none"}); nothing was written`,
        );
      if (role !== undefined && there.role !== role)
        throw new LazarusError(
          "NO_SUCH_MEMBER",
          `${identity} is a member of cell ${cell} as ${there.role}, not ${role}; nothing was written`,
        );
      return [{ op: "remove-member", identity }];
    }
    if (there)
      throw new LazarusError(
        "ALREADY_MEMBER",
        `${identity} is already a member of cell ${cell} as ${there.role}; to change its role, remove it and add it again; nothing was written`,
      );
    return [
      { op: "add-member", member: { identity, role: role as string, ...(command.length > 0 ? { command } : {}) } },
    ];
  });
}

export function teamCommand(): Command {
  return verbCommand("team")
    .description("add a member to a declared cell, or remove one (edits its cells.d/ file)")
    .argument("<cell>", "the cell's name")
    .addArgument(new Argument("<action>", "add or remove").choices(["add", "remove"]))
    .argument("<identity>", "agent:NAME, bot:NAME, human:NAME or a bare NAME (taken as agent:NAME)")
    .argument(
      "[command...]",
      "after --, with add: the program and arguments the member runs (without one, it is invited and joins with lazarus accept)",
    )
    .option("--role <role>", `the member's role (required with add; with remove, it must match): ${ROLES.join(", ")}`)
    .addHelpText(
      "after",
      "\nExamples:\n  lazarus team timmy-config-262 add ezra --role executor -- node ./agents/ezra.mjs\n  lazarus team timmy-config-262 remove agent:ezra --apply",
    )
    .action(
      action(
        async (cell: string, op: "add" | "remove", who: string, command: string[], o: VerbOpts & { role?: string }) => {
          const identity = identityOf(who);
          if (op === "add" && o.role === undefined)
            throw new LazarusError("BAD_FLAGS", `team add needs --role (one of ${ROLES.join(", ")})`);
          if (op === "remove" && command.length > 0)
            throw new LazarusError("BAD_FLAGS", "team remove takes no command");
          const role = o.role === undefined ? undefined : roleOf(o.role);
          return runVerb(o, await memberChange(o, "team", cell, op, identity, role, command));
        },
      ),
    );
}

export function inviteCommand(): Command {
  return verbCommand("invite")
    .description(
      "invite a member into a declared cell (edits its cells.d/ file); without a command the member gets an invitation token and joins with lazarus accept",
    )
    .argument("<cell>", "the cell's name")
    .argument("<identity>", "bot:NAME, human:NAME, agent:NAME or a bare NAME (taken as agent:NAME)")
    .argument("[command...]", "after --: the program and arguments the member runs")
    .option("--role <role>", `the member's role: ${ROLES.join(", ")} (guest needs spec.policy.allowGuests)`, "observer")
    .addHelpText("after", "\nExample:\n  lazarus invite timmy-config-262 bot:kimi --role observer --apply")
    .action(
      action(async (cell: string, who: string, command: string[], o: VerbOpts & { role: string }) => {
        return runVerb(o, await memberChange(o, "invite", cell, "add", identityOf(who), roleOf(o.role), command));
      }),
    );
}

export function closeCommand(): Command {
  return verbCommand("close")
    .description(
      "close a declared cell: sets spec.state: closed (a final checkpoint, then the graveyard; resurrectable within its grace)",
    )
    .argument("<cell>", "the cell's name")
    .action(
      action(async (cell: string, o: VerbOpts) => {
        return runVerb(
          o,
          await editChange(o, "close", cell, "state: closed", () => [{ op: "set", key: "state", value: "closed" }]),
        );
      }),
    );
}

export function destroyCommand(): Command {
  return verbCommand("destroy")
    .description(
      "close a declared cell and scrub it at once: sets spec.state: closed and spec.grace: 0s (asks for confirmation)",
    )
    .option("-y, --yes", "do not ask for confirmation")
    .argument("<cell>", "the cell's name")
    .addHelpText(
      "after",
      "\nThe cell's files (project/, shared/, homes, credentials) are deleted right after its final checkpoint,\nwith no grace to resurrect it; its records and checkpoints are kept in the archive until its retention ends.",
    )
    .action(
      action(async (cell: string, o: VerbOpts) => {
        const change = await editChange(o, "destroy", cell, "state: closed, grace: 0s", (text) => [
          ...(specValue(text, cell, "state") === "closed"
            ? []
            : [{ op: "set", key: "state", value: "closed" } as const]),
          ...(parseDuration(String(specValue(text, cell, "grace") ?? "")) === 0
            ? []
            : [{ op: "set", key: "grace", value: "0s" } as const]),
        ]);
        return runVerb(
          o,
          change,
          `This destroys cell ${cell}: it is closed and its files are deleted at the next apply, with no grace to resurrect it.`,
        );
      }),
    );
}
