// spec.runtime.python: one Python virtual environment per cell, for its members' use; this file
// builds it (apply). What loading checks of it: check.ts beside this file.
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
import { mkdir, lstat, readdir, realpath, rm, chmod } from "node:fs/promises";
import path from "node:path";
import { execa } from "../../util/exec.js";
import type { BackendName, PythonRuntime } from "../../config/types.js";
import { readJson, writeJsonAtomic, writeTextAtomic } from "../../util/fsx.js";
import { LazarusError } from "../../util/errors.js";
import { failpoint } from "../../util/failpoint.js";
import { FIELD, hostPython, pythonWhere, tail } from "./check.js";
import { venvDir, venvsDir } from "../../cells/layout.js";

export const VENV_MARKER = "lazarus-venv.json";
export const REQUIREMENTS_COPY = "lazarus-requirements.txt";
export { venvDir, venvsDir }; // in cells/layout.ts, with the cell's other paths

// A clean environment for python and pip: no PIP_* or PYTHON* from Lazarus's own, no config files.
function toolEnv(venv: string): Record<string, string> {
  return {
    PATH: `${path.join(venv, "bin")}:/usr/local/bin:/usr/bin:/bin`,
    LANG: "C.UTF-8",
    HOME: venv,
    PIP_CONFIG_FILE: "/dev/null",
    PYTHONNOUSERSITE: "1",
    PIP_DISABLE_PIP_VERSION_CHECK: "1",
    PIP_NO_INPUT: "1",
  };
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
export async function ensureVenv(
  py: PythonRuntime,
  o: VenvOptions,
): Promise<{ dir: string; digest: string; reused: boolean }> {
  const digest = py.digest;
  if (!digest)
    throw new LazarusError("BUG", `cell ${o.cell}: spec.runtime.python has no digest (it was not loaded from files)`);
  const dir = venvDir(o.cellDir, digest);
  if (await venvComplete(dir, digest)) return { dir, digest, reused: true };
  const fail = (what: string, out: string): LazarusError =>
    new LazarusError(
      "VENV_FAILED",
      `cell ${o.cell}: ${FIELD}${py.requirements ? ` (requirements ${py.requirements})` : ""}: ${what}${out ? `:\n${tail(out)}` : ""}`,
    );
  const python = hostPython(o.backend);
  if (!python) throw fail(`no python3 on ${pythonWhere(o.backend, false)}`, "install python3 and python3-venv");
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
  return execa("/bin/sh", ["-c", UMASK_022, "lazarus-venv", ...args], {
    reject: false,
    all: true,
    stdin: "ignore",
    env: toolEnv(dir),
    extendEnv: false,
    cwd,
    timeout: 15 * 60_000,
    maxBuffer: 4 << 20,
  });
}

async function build(
  py: PythonRuntime,
  dir: string,
  digest: string,
  python: string,
  o: VenvOptions,
  run: (args: string[]) => ReturnType<typeof runAll>,
  fail: (what: string, out: string) => LazarusError,
): Promise<void> {
  const made = await run([python, "-m", "venv", dir]);
  if (made.exitCode !== 0)
    throw fail(`${python} -m venv failed (exit ${made.exitCode ?? made.signal})`, String(made.all ?? ""));
  failpoint("venv:made");
  if (py.requirementsText !== undefined) {
    const copy = path.join(dir, REQUIREMENTS_COPY);
    await writeTextAtomic(copy, py.requirementsText, 0o644);
    const findLinks = py.findLinks ? ["--find-links", await realInside(o.configDir, py.findLinks)] : [];
    const pip = await run([
      path.join(dir, "bin", "python"),
      "-m",
      "pip",
      "install",
      "--no-index",
      "--only-binary",
      ":all:",
      "--no-cache-dir",
      "--no-input",
      "--disable-pip-version-check",
      ...findLinks,
      "-r",
      copy,
    ]);
    if (pip.exitCode !== 0)
      throw fail(
        `pip install failed (exit ${pip.exitCode ?? pip.signal}); packages come only from ${py.findLinks ? `the wheels in ${py.findLinks}` : "nowhere (no findLinks)"}`,
        String(pip.all ?? ""),
      );
  }
  failpoint("venv:before-marker");
  await execa("sync", ["-f", dir], { reject: false, stdin: "ignore" }); // the files, before the marker that says they are whole
  await writeJsonAtomic(path.join(dir, VENV_MARKER), {
    digest,
    python,
    requirements: py.requirements ?? null,
    findLinks: py.findLinks ?? null,
    createdAt: new Date(o.now).toISOString(),
  });
}

// The real path of a dir named relative to the config dir, refused when it leads out of it.
async function realInside(configDir: string, rel: string): Promise<string> {
  const root = await realpath(configDir);
  const real = await realpath(path.join(configDir, rel));
  if (!real.startsWith(root + path.sep))
    throw new LazarusError("VENV_FAILED", `${FIELD}.findLinks ${rel} leads out of the config dir (${real})`);
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
export async function applyPython(
  rec: { name: string; backend: BackendName; python?: { digest: string } },
  cellDir: string,
  py: PythonRuntime | undefined,
  o: { configDir: string; now: number },
): Promise<boolean> {
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
