// Helpers for spec.runtime.python tests: a tiny pure-Python wheel made on the spot (a wheel is a
// zip of the package and its .dist-info), and whether this host can make venvs at all.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { hostPython, venvProblem } from "../src/runtime/python/check.js";
import { tempDir } from "./helpers.js";

// Why venv tests cannot run here, or undefined.
export async function venvSkipReason(backend: "process" | "sandbox" = "process"): Promise<string | undefined> {
  const python = hostPython(backend);
  if (!python) return `no python3 for the ${backend} backend on the PATH`;
  const problem = await venvProblem(python);
  return problem ? `${problem} (Debian/Ubuntu: apt-get install python3-venv)` : undefined;
}

// Write <name>-<version>-py3-none-any.whl into dir: a package whose GREETING is greeting.
export async function writeWheel(dir: string, name: string, version: string, greeting: string): Promise<string> {
  const src = tempDir("lazarus-wheel-");
  const info = `${name}-${version}.dist-info`;
  mkdirSync(path.join(src, name));
  mkdirSync(path.join(src, info));
  writeFileSync(path.join(src, name, "__init__.py"), `GREETING = ${JSON.stringify(greeting)}\n`);
  writeFileSync(path.join(src, info, "METADATA"), `Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\n`);
  writeFileSync(
    path.join(src, info, "WHEEL"),
    "Wheel-Version: 1.0\nGenerator: lazarus-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
  );
  writeFileSync(
    path.join(src, info, "RECORD"),
    [`${name}/__init__.py,,`, `${info}/METADATA,,`, `${info}/WHEEL,,`, `${info}/RECORD,,`, ""].join("\n"),
  );
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}-${version}-py3-none-any.whl`);
  await execa("python3", ["-m", "zipfile", "-c", file, name, info], { cwd: src });
  return file;
}
