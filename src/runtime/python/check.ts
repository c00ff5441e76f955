// spec.runtime.python at load time: the path rules of requirements and findLinks (pure), then,
// as the I/O step of loading, the requirements read and checked line by line, the wheels
// digested, and whether this host can make the venv. What the venv is and how it is built:
// venv.ts beside this file.
import { createHash } from "node:crypto";
import { constants, type Stats } from "node:fs";
import { lstat, open, readdir, realpath } from "node:fs/promises";
import { accessSync, constants as fsConstants, realpathSync } from "node:fs";
import path from "node:path";
import { execa } from "../../util/exec.js";
import type { Diagnostic } from "../../config/diagnostics.js";
import { memberPath } from "../../config/programs.js";
import { maxFileSize, readRegularFile } from "../../config/read.js";
import { canonicalJson, sha256 } from "../../config/digest.js";
import type { BackendName, DesiredCell, FileResult, SourcePos } from "../../config/types.js";
import { LazarusError, errorMessage, isErrno } from "../../util/errors.js";
import { findBackend } from "../../backends/table.js";
import type { PythonSupport } from "../../backends/contract.js";

export const FIELD = "spec.runtime.python";

const pythonSupport = (backend: BackendName): PythonSupport | undefined =>
  findBackend(backend)?.capabilities.python || undefined;

// Whether a path names something inside the config dir, by its text: relative, no "..".
function pathProblem(p: string): string | undefined {
  if (path.isAbsolute(p)) return `"${p}" is an absolute path`;
  const norm = path.posix.normalize(p);
  if (norm === "." || norm.startsWith("../") || norm === ".." || p.split("/").includes(".."))
    return `"${p}" leads out of the config dir (or names it)`;
  return undefined;
}

// The path rules of spec.runtime.python (pure), checked with the rest of a cell's fields.
export function pythonPathDiagnostics(cell: DesiredCell, at: (p: (string | number)[]) => SourcePos): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const key of ["requirements", "findLinks"] as const) {
    const p = cell.python?.[key];
    if (p === undefined) continue;
    const problem = pathProblem(p);
    if (problem)
      out.push({
        severity: "error",
        ...at(["spec", "runtime", "python", key]),
        field: `${FIELD}.${key}`,
        message: `${problem}; it is read only from inside the config dir`,
        hint:
          key === "requirements"
            ? "name a file relative to the config dir, e.g. python/requirements.txt"
            : "name a directory of wheels relative to the config dir, e.g. python/wheels",
      });
  }
  return out;
}

// A requirement line pip may take from an untrusted file: a name, extras, version specifiers and
// environment markers. No options (-r, -c, -e, --index-url, ...), no URL or path (name @ url),
// no line continuation. Linear on any input: no two quantifiers can share a run of characters (each
// \s* is followed by a character that is not a blank, each name or version by one that cannot be
// part of it), so a line that fails is given up after one pass, not after trying every split of
// a run of blanks between adjacent \s* (150 KB of spaces once took 32 s).
const NAME = String.raw`[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?`;
const EXTRAS = String.raw`(?:\s*\[\s*(?:${NAME}(?:\s*,\s*${NAME})*\s*)?\])?`;
const SPEC = String.raw`(?:===|==|!=|~=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+`;
const SPECS = String.raw`(?:\s*(?:\(\s*)?${SPEC}(?:\s*,\s*${SPEC})*(?:\s*\))?)?`;
const MARKER = String.raw`(?:\s*;[^@\\]*)?`;
const REQUIREMENT = new RegExp(`^${NAME}${EXTRAS}${SPECS}${MARKER}$`);

// The longest requirement line read (a real one is well under 200 characters).
export const MAX_REQUIREMENT_LINE = 1000;
// The most lines reported as problems; the rest are counted in one more.
const MAX_REPORTED = 20;

// Whether a line (comment and blanks removed) is a plain requirement.
export function plainRequirement(line: string): boolean {
  return REQUIREMENT.test(line);
}

// A line without its comment: from the first "#" at the start or after a blank, as pip reads it.
function uncommented(raw: string): string {
  return raw.replace(/(^|\s)#[\s\S]*$/, "");
}

// Why one line of a requirements text is not a plain requirement, or undefined.
function lineProblem(raw: string): string | undefined {
  if (raw.length > MAX_REQUIREMENT_LINE)
    return `the line is ${raw.length} characters long, over the ${MAX_REQUIREMENT_LINE}-character limit of a requirement line`;
  const line = uncommented(raw.replace(/\r$/, "")).trim();
  if (line === "") return undefined;
  if (line.startsWith("-")) return `"${line.split(/\s/)[0]}": options are not allowed in a requirements file here`;
  if (line.endsWith("\\")) return "line continuations are not allowed";
  if (!plainRequirement(line))
    return `"${line.length > 80 ? `${line.slice(0, 80)}…` : line}" is not a plain requirement (name, [extras], versions, ; markers); URLs and paths are not allowed`;
  return undefined;
}

// The lines of a requirements text that are not plain requirements: [line number, why]. At most
// MAX_REPORTED of them; the next one also counts those after it.
export function requirementProblems(text: string): { line: number; problem: string }[] {
  const out: { line: number; problem: string }[] = [];
  let more = 0;
  text.split("\n").forEach((raw, i) => {
    const problem = lineProblem(raw);
    if (problem === undefined) return;
    if (out.length < MAX_REPORTED) out.push({ line: i + 1, problem });
    else if (more++ === 0) out.push({ line: i + 1, problem: "" });
  });
  const last = out[MAX_REPORTED];
  if (last)
    last.problem = `this line and ${more - 1} more after it are not plain requirements either (only the first ${MAX_REPORTED} are described)`;
  return out;
}

// sha256 of a regular file, read without following a link or blocking.
async function fileDigest(file: string): Promise<string> {
  const fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW | constants.O_NOCTTY);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new LazarusError("NOT_A_FILE", `${file} is not a regular file`);
    const hash = createHash("sha256");
    for await (const chunk of fh.createReadStream({ autoClose: false })) hash.update(chunk as Buffer);
    return hash.digest("hex");
  } finally {
    await fh.close().catch(() => undefined);
  }
}

// The wheel dir as pip would see it: a real directory inside the config dir, holding regular files
// only (a link could lead pip anywhere). Returns each file's name and digest, or the problem.
async function wheelDir(
  configDir: string,
  rel: string,
): Promise<{ wheels: { name: string; sha256: string }[] } | { problem: string; hint: string }> {
  const dir = path.join(configDir, rel);
  let st: Stats;
  try {
    st = await lstat(dir);
  } catch (err) {
    return isErrno(err, "ENOENT")
      ? { problem: `${rel} does not exist`, hint: "create it and put the wheels (.whl) there, or remove findLinks" }
      : { problem: `cannot read ${rel}: ${errorMessage(err)}`, hint: "make it readable by Lazarus" };
  }
  if (!st.isDirectory())
    return {
      problem: `${rel} is not a directory${st.isSymbolicLink() ? " (a symbolic link)" : ""}`,
      hint: "name a real directory of wheels inside the config dir",
    };
  const root = await realpath(configDir).catch(() => path.resolve(configDir));
  const real = await realpath(dir);
  if (!real.startsWith(root + path.sep))
    return { problem: `${rel} leads out of the config dir (${real})`, hint: "name a directory inside the config dir" };
  const wheels: { name: string; sha256: string }[] = [];
  for (const e of (await readdir(dir, { withFileTypes: true })).sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  )) {
    if (e.name.startsWith(".")) continue;
    if (!e.isFile())
      return {
        problem: `${rel}/${e.name} is not a regular file`,
        hint: "keep only wheel files in the wheel directory (no links, no subdirectories)",
      };
    try {
      wheels.push({ name: e.name, sha256: await fileDigest(path.join(dir, e.name)) });
    } catch (err) {
      return { problem: `cannot read ${rel}/${e.name}: ${errorMessage(err)}`, hint: "make it a readable regular file" };
    }
  }
  return { wheels };
}

// The python3 a backend's venvs are made with: the first python3 on the members' PATH whose real
// path the backend's members can see (the sandbox's: under /usr or /bin), since a venv's
// bin/python is a link to it.
export function hostPython(backend: BackendName, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const seen = pythonSupport(backend)?.realPath;
  const override = env.LAZARUS_PYTHON;
  const candidates = override
    ? [override]
    : memberPath(env)
        .split(":")
        .filter((d) => path.isAbsolute(d))
        .map((d) => path.join(d, "python3"));
  for (const c of candidates) {
    try {
      accessSync(c, fsConstants.X_OK);
      const real = realpathSync(c);
      if (seen && !seen.test(real)) continue;
      return c;
    } catch {
      // not there
    }
  }
  return undefined;
}

// Whether `python -m venv` can make a venv with pip on this host (Debian splits ensurepip into
// python3-venv). Cached per interpreter.
const venvChecks = new Map<string, Promise<string | undefined>>();
export function venvProblem(python: string): Promise<string | undefined> {
  let p = venvChecks.get(python);
  if (!p) {
    p = execa(python, ["-c", "import venv, ensurepip; ensurepip.version()"], {
      reject: false,
      stdin: "ignore",
      timeout: 30_000,
      env: { PATH: "/usr/bin:/bin", LANG: "C.UTF-8" },
      extendEnv: false,
    }).then((r) =>
      r.exitCode === 0
        ? undefined
        : `${python} -m venv is not available (${tail(String(r.stderr), 1) || `exit ${r.exitCode}`})`,
    );
    venvChecks.set(python, p);
  }
  return p;
}

// Where a backend's python3 is looked for, for a message (why: with the reason it is only there).
export function pythonWhere(backend: BackendName, why: boolean): string {
  const py = pythonSupport(backend);
  if (!py) return "the PATH";
  return why && py.why ? `${py.where} (${py.why})` : py.where;
}

// The I/O step of loading: read each cell's requirements (as config files are read: a regular
// file inside the config dir, size-capped, never blocking), check its lines, digest it with the
// wheels, and warn when this host cannot make a venv. A problem with the files is an error at the
// cell (its file is quarantined, its cells held); a host without venv support is a warning.
export async function checkFilePython(result: FileResult, configDir: string): Promise<FileResult> {
  if (!result.cells.some((c) => c.python)) return result;
  const diagnostics = [...result.diagnostics];
  const cells: DesiredCell[] = [];
  for (const c of result.cells) {
    const py = c.python;
    if (!py || pathProblem(py.requirements ?? "x") || pathProblem(py.findLinks ?? "x")) {
      cells.push(c);
      continue;
    }
    const at = py.at ?? c.source;
    const err = (field: string, message: string, hint: string, pos: Partial<SourcePos> = at): void => {
      diagnostics.push({ severity: "error", ...at, ...pos, field: `${FIELD}${field}`, message, hint });
    };
    let text: string | undefined;
    let ok = true;
    if (py.requirements !== undefined) {
      const r = await readRegularFile(path.join(configDir, py.requirements), maxFileSize(), configDir);
      if (r.kind === "missing") {
        err(
          ".requirements",
          `${py.requirements} does not exist`,
          "create it (one requirement per line), or remove requirements for a bare venv",
        );
        ok = false;
      } else if (r.kind === "problem") {
        err(".requirements", `cannot read ${py.requirements}: ${r.problem.problem}`, r.problem.hint);
        ok = false;
      } else {
        text = r.bytes.toString("utf8");
        if (!Buffer.from(text, "utf8").equals(r.bytes) || text.includes("\0")) {
          err(".requirements", `${py.requirements} is not UTF-8 text`, "write it as plain UTF-8 text");
          ok = false;
        } else {
          for (const p of requirementProblems(text)) {
            err(
              ".requirements",
              `${p.problem} (the requirements of cell ${c.name}, ${at.file}:${at.line})`,
              "write one package per line, e.g. requests==2.31.0; put wheels in the findLinks directory",
              { file: py.requirements, line: p.line, col: 1 },
            );
            ok = false;
          }
        }
      }
    }
    let wheels: { name: string; sha256: string }[] = [];
    if (py.findLinks !== undefined) {
      const w = await wheelDir(configDir, py.findLinks);
      if ("problem" in w) {
        err(".findLinks", w.problem, w.hint);
        ok = false;
      } else wheels = w.wheels;
    }
    if (!ok) {
      cells.push(c);
      continue;
    }
    const python = hostPython(c.backend);
    const problem = python ? await venvProblem(python) : `no python3 on ${pythonWhere(c.backend, true)}`;
    if (problem)
      diagnostics.push({
        severity: "warning",
        ...at,
        field: FIELD,
        message: `this host cannot make the cell's venv: ${problem}`,
        hint: "install python3 and its venv module (Debian/Ubuntu: apt-get install python3-venv); the cell's create or update fails until then",
      });
    const digest = sha256(canonicalJson({ requirements: text ?? null, findLinks: py.findLinks ?? null, wheels })).slice(
      0,
      16,
    );
    cells.push({ ...c, python: { ...py, ...(text !== undefined ? { requirementsText: text } : {}), digest } });
  }
  return { ...result, cells, diagnostics };
}

// The last lines of a tool's output, for an error a person reads.
export function tail(text: string, lines = 15): string {
  return text.trim().split("\n").slice(-lines).join("\n");
}
