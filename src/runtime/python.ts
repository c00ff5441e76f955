// spec.runtime.python: one Python virtual environment per cell, for its members' use.
//
// Where: <cell>/.lazarus/venvs/<digest>/, content-addressed by the digest of the requirements text
// and of the wheels in findLinks. It lives in the cell's tree, so close carries it to the graveyard
// (and resurrect back) and scrub deletes it with the rest; checkpoints leave it out (.lazarus/).
// A venv is built in place (a venv is not relocatable: pip writes its absolute path into the
// scripts it installs) and counts as complete only once its marker (lazarus-venv.json, written
// atomically after everything else is synced) holds its digest. A killed apply leaves a dir without
// a marker, which the next build deletes and starts again; the record's `python.digest` names the
// venv in force and is set only after the venv is complete, so members never start on a half one.
//
// Who: Lazarus's own user builds it (root for sandbox cells), with umask 022: every member reads
// it, none can write it. Sandboxed members see it read-only at the same absolute path (so pyvenv.cfg,
// sys.prefix and the #! lines of installed scripts agree inside and out). Packages come only from
// wheels (pip --only-binary :all: --no-index): installing a wheel unpacks files and runs none of
// the package's code, and the requirements may hold plain requirement lines only (no options such
// as -r, -e, --index-url, no URLs or paths), so an untrusted cells.d/ cannot make pip read host
// files or run code as Lazarus's user.
import { createHash } from "node:crypto";
import { constants, type Stats } from "node:fs";
import { lstat, mkdir, open, readdir, realpath, rm, chmod } from "node:fs/promises";
import { accessSync, constants as fsConstants, realpathSync } from "node:fs";
import path from "node:path";
import { execa } from "../util/exec.js";
import type { Diagnostic } from "../config/diagnostics.js";
import type { FileResult } from "../config/load.js";
import { memberPath } from "../config/programs.js";
import { maxFileSize, readRegularFile } from "../config/read.js";
import { canonicalJson, sha256 } from "../config/digest.js";
import type { BackendName, DesiredCell, PythonRuntime, SourcePos } from "../config/types.js";
import { readJson, writeJsonAtomic, writeTextAtomic } from "../util/fsx.js";
import { LazarusError, errorMessage, isErrno } from "../util/errors.js";
import { failpoint } from "../util/failpoint.js";

export const VENV_MARKER = "lazarus-venv.json";
export const REQUIREMENTS_COPY = "lazarus-requirements.txt";
export const venvsDir = (cellDir: string): string => path.join(cellDir, ".lazarus", "venvs");
export const venvDir = (cellDir: string, digest: string): string => path.join(venvsDir(cellDir), digest);

const FIELD = "spec.runtime.python";

// ---- loading ---------------------------------------------------------------------------------

// Whether a path names something inside the config dir, by its text: relative, no "..".
function pathProblem(p: string): string | undefined {
  if (path.isAbsolute(p)) return `"${p}" is an absolute path`;
  const norm = path.posix.normalize(p);
  if (norm === "." || norm.startsWith("../") || norm === ".." || p.split("/").includes("..")) return `"${p}" leads out of the config dir (or names it)`;
  return undefined;
}

// The path rules of spec.runtime.python (pure), checked with the rest of a cell's fields.
export function pythonPathDiagnostics(cell: DesiredCell, at: (p: (string | number)[]) => SourcePos): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const key of ["requirements", "findLinks"] as const) {
    const p = cell.python?.[key];
    if (p === undefined) continue;
    const problem = pathProblem(p);
    if (problem) out.push({ severity: "error", ...at(["spec", "runtime", "python", key]), field: `${FIELD}.${key}`, message: `${problem}; it is read only from inside the config dir`, hint: key === "requirements" ? "name a file relative to the config dir, e.g. python/requirements.txt" : "name a directory of wheels relative to the config dir, e.g. python/wheels" });
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
  if (raw.length > MAX_REQUIREMENT_LINE) return `the line is ${raw.length} characters long, over the ${MAX_REQUIREMENT_LINE}-character limit of a requirement line`;
  const line = uncommented(raw.replace(/\r$/, "")).trim();
  if (line === "") return undefined;
  if (line.startsWith("-")) return `"${line.split(/\s/)[0]}": options are not allowed in a requirements file here`;
  if (line.endsWith("\\")) return "line continuations are not allowed";
  if (!plainRequirement(line)) return `"${line.length > 80 ? `${line.slice(0, 80)}…` : line}" is not a plain requirement (name, [extras], versions, ; markers); URLs and paths are not allowed`;
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
  if (last) last.problem = `this line and ${more - 1} more after it are not plain requirements either (only the first ${MAX_REPORTED} are described)`;
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
async function wheelDir(configDir: string, rel: string): Promise<{ wheels: { name: string; sha256: string }[] } | { problem: string; hint: string }> {
  const dir = path.join(configDir, rel);
  let st: Stats;
  try {
    st = await lstat(dir);
  } catch (err) {
    return isErrno(err, "ENOENT") ? { problem: `${rel} does not exist`, hint: "create it and put the wheels (.whl) there, or remove findLinks" } : { problem: `cannot read ${rel}: ${errorMessage(err)}`, hint: "make it readable by Lazarus" };
  }
  if (!st.isDirectory()) return { problem: `${rel} is not a directory${st.isSymbolicLink() ? " (a symbolic link)" : ""}`, hint: "name a real directory of wheels inside the config dir" };
  const root = await realpath(configDir).catch(() => path.resolve(configDir));
  const real = await realpath(dir);
  if (!real.startsWith(root + path.sep)) return { problem: `${rel} leads out of the config dir (${real})`, hint: "name a directory inside the config dir" };
  const wheels: { name: string; sha256: string }[] = [];
  for (const e of (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (e.name.startsWith(".")) continue;
    if (!e.isFile()) return { problem: `${rel}/${e.name} is not a regular file`, hint: "keep only wheel files in the wheel directory (no links, no subdirectories)" };
    try {
      wheels.push({ name: e.name, sha256: await fileDigest(path.join(dir, e.name)) });
    } catch (err) {
      return { problem: `cannot read ${rel}/${e.name}: ${errorMessage(err)}`, hint: "make it a readable regular file" };
    }
  }
  return { wheels };
}

// The python3 a backend's venvs are made with: the first python3 on the members' PATH; for the
// sandbox, the first one that lives under /usr or /bin (what a sandboxed member sees of the host),
// since a venv's bin/python is a link to it.
export function hostPython(backend: BackendName, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const override = env.LAZARUS_PYTHON;
  const candidates = override ? [override] : memberPath(env).split(":").filter((d) => path.isAbsolute(d)).map((d) => path.join(d, "python3"));
  for (const c of candidates) {
    try {
      accessSync(c, fsConstants.X_OK);
      const real = realpathSync(c);
      if (backend === "sandbox" && !/^\/(usr|bin)\//.test(real)) continue;
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
    p = execa(python, ["-c", "import venv, ensurepip; ensurepip.version()"], { reject: false, stdin: "ignore", timeout: 30_000, env: { PATH: "/usr/bin:/bin", LANG: "C.UTF-8" }, extendEnv: false }).then((r) =>
      r.exitCode === 0 ? undefined : `${python} -m venv is not available (${tail(String(r.stderr), 1) || `exit ${r.exitCode}`})`,
    );
    venvChecks.set(python, p);
  }
  return p;
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
        err(".requirements", `${py.requirements} does not exist`, "create it (one requirement per line), or remove requirements for a bare venv");
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
            err(".requirements", `${p.problem} (the requirements of cell ${c.name}, ${at.file}:${at.line})`, "write one package per line, e.g. requests==2.31.0; put wheels in the findLinks directory", { file: py.requirements, line: p.line, col: 1 });
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
    const problem = python ? await venvProblem(python) : `no python3 on ${c.backend === "sandbox" ? "the PATH under /usr or /bin (sandboxed members see only those)" : "the members' PATH"}`;
    if (problem) diagnostics.push({ severity: "warning", ...at, field: FIELD, message: `this host cannot make the cell's venv: ${problem}`, hint: "install python3 and its venv module (Debian/Ubuntu: apt-get install python3-venv); the cell's create or update fails until then" });
    const digest = sha256(canonicalJson({ requirements: text ?? null, findLinks: py.findLinks ?? null, wheels })).slice(0, 16);
    cells.push({ ...c, python: { ...py, ...(text !== undefined ? { requirementsText: text } : {}), digest } });
  }
  return { ...result, cells, diagnostics };
}

// ---- applying --------------------------------------------------------------------------------

// The last lines of a tool's output, for an error a person reads.
function tail(text: string, lines = 15): string {
  return text.trim().split("\n").slice(-lines).join("\n");
}

// A clean environment for python and pip: no PIP_* or PYTHON* from Lazarus's own, no config files.
function toolEnv(venv: string): Record<string, string> {
  return { PATH: `${path.join(venv, "bin")}:/usr/local/bin:/usr/bin:/bin`, LANG: "C.UTF-8", HOME: venv, PIP_CONFIG_FILE: "/dev/null", PYTHONNOUSERSITE: "1", PIP_DISABLE_PIP_VERSION_CHECK: "1", PIP_NO_INPUT: "1" };
}

const UMASK_022 = 'umask 022; exec "$@"';

// Whether dir holds a complete venv for digest.
export async function venvComplete(dir: string, digest: string): Promise<boolean> {
  const marker = await readJson<{ digest?: string }>(path.join(dir, VENV_MARKER)).catch(() => undefined);
  return marker?.digest === digest;
}

export interface VenvOptions {
  cell: string;
  cellDir: string;
  configDir: string;
  backend: BackendName;
  now: number;
}

// Make (or find complete) the cell's venv for py.digest; returns its dir and whether it was there.
export async function ensureVenv(py: PythonRuntime, o: VenvOptions): Promise<{ dir: string; digest: string; reused: boolean }> {
  const digest = py.digest;
  if (!digest) throw new LazarusError("BUG", `cell ${o.cell}: spec.runtime.python has no digest (it was not loaded from files)`);
  const dir = venvDir(o.cellDir, digest);
  if (await venvComplete(dir, digest)) return { dir, digest, reused: true };
  const fail = (what: string, out: string): LazarusError =>
    new LazarusError("VENV_FAILED", `cell ${o.cell}: ${FIELD}${py.requirements ? ` (requirements ${py.requirements})` : ""}: ${what}${out ? `:\n${tail(out)}` : ""}`);
  const python = hostPython(o.backend);
  if (!python) throw fail(`no python3 on ${o.backend === "sandbox" ? "the PATH under /usr or /bin" : "the PATH"}`, "install python3 and python3-venv");
  const parent = venvsDir(o.cellDir);
  await mkdir(parent, { recursive: true, mode: 0o755 });
  const pst = await lstat(parent);
  if (!pst.isDirectory()) throw new LazarusError("NOT_A_DIRECTORY", `${parent} is not a directory; move it away`);
  if ((pst.mode & 0o777) !== 0o755) await chmod(parent, 0o755);
  await rm(dir, { recursive: true, force: true }); // what a killed build left (no marker)
  const run = (args: string[]) => runAll(args, dir, parent);
  try {
    await build(py, dir, digest, python, o, run, fail);
  } catch (err) {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined); // no half venv left behind
    throw err;
  }
  return { dir, digest, reused: false };
}

// A venv tool run through the shell (umask 022), its output interleaved, never rejecting.
function runAll(args: string[], dir: string, cwd: string) {
  return execa("/bin/sh", ["-c", UMASK_022, "lazarus-venv", ...args], { reject: false, all: true, stdin: "ignore", env: toolEnv(dir), extendEnv: false, cwd, timeout: 15 * 60_000, maxBuffer: 4 << 20 });
}

async function build(py: PythonRuntime, dir: string, digest: string, python: string, o: VenvOptions, run: (args: string[]) => ReturnType<typeof runAll>, fail: (what: string, out: string) => LazarusError): Promise<void> {
  const made = await run([python, "-m", "venv", dir]);
  if (made.exitCode !== 0) throw fail(`${python} -m venv failed (exit ${made.exitCode ?? made.signal})`, String(made.all ?? ""));
  failpoint("venv:made");
  if (py.requirementsText !== undefined) {
    const copy = path.join(dir, REQUIREMENTS_COPY);
    await writeTextAtomic(copy, py.requirementsText, 0o644);
    const findLinks = py.findLinks ? ["--find-links", await realInside(o.configDir, py.findLinks)] : [];
    const pip = await run([path.join(dir, "bin", "python"), "-m", "pip", "install", "--no-index", "--only-binary", ":all:", "--no-cache-dir", "--no-input", "--disable-pip-version-check", ...findLinks, "-r", copy]);
    if (pip.exitCode !== 0) throw fail(`pip install failed (exit ${pip.exitCode ?? pip.signal}); packages come only from ${py.findLinks ? `the wheels in ${py.findLinks}` : "nowhere (no findLinks)"}`, String(pip.all ?? ""));
  }
  failpoint("venv:before-marker");
  await execa("sync", ["-f", dir], { reject: false, stdin: "ignore" }); // the files, before the marker that says they are whole
  await writeJsonAtomic(path.join(dir, VENV_MARKER), { digest, python, requirements: py.requirements ?? null, findLinks: py.findLinks ?? null, createdAt: new Date(o.now).toISOString() });
}

// The real path of a dir named relative to the config dir, refused when it leads out of it.
async function realInside(configDir: string, rel: string): Promise<string> {
  const root = await realpath(configDir);
  const real = await realpath(path.join(configDir, rel));
  if (!real.startsWith(root + path.sep)) throw new LazarusError("VENV_FAILED", `${FIELD}.findLinks ${rel} leads out of the config dir (${real})`);
  return real;
}

// Delete every venv of the cell but keep (none when keep is undefined): old ones once members moved on.
export async function pruneVenvs(cellDir: string, keep: string | undefined): Promise<string[]> {
  const parent = venvsDir(cellDir);
  const gone: string[] = [];
  for (const e of await readdir(parent).catch(() => [] as string[])) {
    if (e === keep) continue;
    await rm(path.join(parent, e), { recursive: true, force: true });
    gone.push(e);
  }
  return gone;
}

// Bring a cell's venv to what is declared (none, or complete for py.digest) and record it in rec;
// true when the venv in force changed (its running members must restart to use it). A failure
// throws before rec changes: members keep the venv they run with.
export async function applyPython(rec: { name: string; backend: BackendName; python?: { digest: string } }, cellDir: string, py: PythonRuntime | undefined, o: { configDir: string; now: number }): Promise<boolean> {
  if (!py) {
    if (!rec.python) return false;
    delete rec.python;
    return true;
  }
  const v = await ensureVenv(py, { cell: rec.name, cellDir, configDir: o.configDir, backend: rec.backend, now: o.now });
  const changed = rec.python?.digest !== v.digest;
  rec.python = { digest: v.digest };
  return changed;
}
