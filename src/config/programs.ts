// Whether each member's program can be found where it will run: argv[0] looked up on the PATH
// Lazarus gives members, or (./) relative to the config dir. Not found is a warning at the
// command's line: the host may still get the program before the member starts. An argument
// relative to the config dir must stay in it: one that climbs out (../x, ./a/../../x) or names a
// symbolic link that leads out is an error at its line, and the cell's file is quarantined.
import { accessSync, constants, realpathSync, statSync } from "node:fs";
import path from "node:path";
import type { Diagnostic } from "./diagnostics.js";
import { isInside } from "./read.js";
import type { DesiredCell, SourcePos } from "./types.js";
import { recentlyComputed } from "../util/memo.js";
import { findBackend } from "../backends/table.js";
import { errorMessage, isErrno } from "../util/errors.js";

// Whether a command argument is a path relative to the config dir (see resolveCommand).
export const configRelative = (arg: string): boolean => arg.startsWith("./") || arg.startsWith("../");

// Whether a config-relative argument climbs out of the config dir, by its text.
const climbsOut = (arg: string): boolean => {
  const norm = path.posix.normalize(arg);
  return norm === ".." || norm.startsWith("../");
};

const HINT_INSIDE =
  "keep the program (and every path argument starting with ./) inside the config dir, or give an absolute path";

// Arguments relative to the config dir that climb out of it, as errors at their lines (pure).
export function commandPathDiagnostics(cell: DesiredCell, at: (p: (string | number)[]) => SourcePos): Diagnostic[] {
  const out: Diagnostic[] = [];
  cell.members.forEach((m, i) =>
    m.command?.forEach((arg, j) => {
      if (!configRelative(arg) || !climbsOut(arg)) return;
      out.push({
        severity: "error",
        ...at(["spec", "members", i, "command", j]),
        field: `spec.members[${i}].command[${j}]`,
        message: `"${arg}" leads out of the config dir; paths starting with ./ are read from inside it`,
        hint: HINT_INSIDE,
      });
    }),
  );
  return out;
}

// Why an existing config-relative path resolves (through symbolic links) outside the config dir.
function linkProblem(arg: string, configDir: string): string | undefined {
  let real: string;
  try {
    real = realpathSync(path.resolve(configDir, arg));
  } catch (err) {
    if (isErrno(err, "ENOENT") || isErrno(err, "ENOTDIR")) return undefined; // not there: a warning says so
    return `"${arg}" cannot be resolved: ${errorMessage(err)}`;
  }
  return isInside(real, configDir)
    ? undefined
    : `"${arg}" is a symbolic link (or lies under one) to ${real}, outside the config dir`;
}

// Arguments relative to the config dir that resolve through a symbolic link to outside it, as
// errors at the command's line. Those that climb out by their text are commandPathDiagnostics'.
export function commandLinkErrors(cells: DesiredCell[], configDir: string): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const cell of cells) {
    cell.members.forEach((m, i) =>
      m.command?.forEach((arg, j) => {
        if (!configRelative(arg) || climbsOut(arg)) return;
        const problem = linkProblem(arg, configDir);
        if (problem)
          out.push({
            severity: "error",
            ...(m.commandSource ?? m.source),
            field: `spec.members[${i}].command[${j}]`,
            message: problem,
            hint: HINT_INSIDE,
          });
      }),
    );
  }
  return out;
}

// The PATH of a member's environment (see src/backends/env.ts).
export function memberPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.PATH ?? "/usr/local/bin:/usr/bin:/bin";
}

function isExecutableFile(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

// Where argv[0] resolves, undefined when it does not; true when it cannot be judged here (a path
// relative to the member's own home).
export function findProgram(program: string, configDir: string, searchPath: string): string | undefined | true {
  if (configRelative(program)) {
    const file = path.resolve(configDir, program);
    return isExecutableFile(file) ? file : undefined;
  }
  if (path.isAbsolute(program)) return isExecutableFile(program) ? program : undefined;
  if (program.includes("/")) return true;
  for (const dir of searchPath.split(":")) {
    const file = path.join(dir || ".", program);
    if (dir && isExecutableFile(file)) return file;
  }
  return undefined;
}

// findProgram's answers for a second (a config of a thousand cells names the same few programs).
const recentFound = recentlyComputed<string, string | undefined | true>(1000);
const findProgramCached = (program: string, configDir: string, searchPath: string): string | undefined | true =>
  recentFound(`${configDir}\0${searchPath}\0${program}`, () => findProgram(program, configDir, searchPath));

// A warning for each member whose program is not found.
export function programWarnings(
  cells: DesiredCell[],
  configDir: string,
  env: NodeJS.ProcessEnv = process.env,
): Diagnostic[] {
  const out: Diagnostic[] = [];
  const searchPath = memberPath(env);
  for (const cell of cells) {
    // looked up where members run: an image, a cluster, another host
    if (!findBackend(cell.backend)?.capabilities.hostPrograms) continue;
    cell.members.forEach((m, i) => {
      const program = m.command?.[0];
      if (
        !program ||
        (configRelative(program) && climbsOut(program)) ||
        findProgramCached(program, configDir, searchPath) !== undefined
      )
        return;
      if (cell.python && /^(python3?|pip3?)$/.test(program)) return; // the cell's venv has it
      const where = configRelative(program)
        ? `relative to the config dir ${path.resolve(configDir)}`
        : path.isAbsolute(program)
          ? "at that path"
          : `on the members' PATH (${searchPath})`;
      out.push({
        severity: "warning",
        ...(m.commandSource ?? m.source),
        field: `spec.members[${i}].command`,
        message: `program "${program}" is not found ${where}, or is not executable`,
        hint: "install it, fix the name, or give its full path; the member will fail to start until then",
      });
    });
  }
  return out;
}
