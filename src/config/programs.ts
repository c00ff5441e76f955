// Whether each member's program can be found where it will run: argv[0] looked up on the PATH
// Lazarus gives members, or (./ and ../) relative to the config dir. Not found is a warning at the
// command's line: the host may still get the program before the member starts.
import { accessSync, constants, statSync } from "node:fs";
import path from "node:path";
import type { Diagnostic } from "./diagnostics.js";
import type { DesiredCell } from "./types.js";
import { recentlyComputed } from "../util/memo.js";

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
  if (program.startsWith("./") || program.startsWith("../")) {
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
export function programWarnings(cells: DesiredCell[], configDir: string, env: NodeJS.ProcessEnv = process.env): Diagnostic[] {
  const out: Diagnostic[] = [];
  const searchPath = memberPath(env);
  for (const cell of cells) {
    if (cell.backend === "container" || cell.backend === "kubernetes" || cell.backend === "remote") continue; // programs are looked up in the image, the cluster or on the remote host
    cell.members.forEach((m, i) => {
      const program = m.command?.[0];
      if (!program || findProgramCached(program, configDir, searchPath) !== undefined) return;
      if (cell.python && /^(python3?|pip3?)$/.test(program)) return; // the cell's venv has it
      const where = program.startsWith("./") || program.startsWith("../") ? `relative to the config dir ${path.resolve(configDir)}` : path.isAbsolute(program) ? "at that path" : `on the members' PATH (${searchPath})`;
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
