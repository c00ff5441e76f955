// Files named on the command line (portfolio import FILE, --portfolio-file): read as config files
// are (regular files only, size-capped, strict UTF-8, never blocking), every error naming the file.
import { decodeYaml } from "../config/decode.js";
import { maxFileSize, readRegularFile } from "../config/read.js";
import { LazarusError } from "../util/errors.js";

// The text of a file given on the command line; what names it in messages (e.g. "the legacy file").
export async function readTextArg(file: string, what: string, maxBytes = maxFileSize()): Promise<string> {
  const r = await readRegularFile(file, maxBytes);
  if (r.kind === "missing") throw new LazarusError("NO_SUCH_FILE", `${file}: no such file (${what})`);
  if (r.kind === "problem")
    throw new LazarusError("UNREADABLE_FILE", `${file}: cannot read ${what}: ${r.problem.problem}; ${r.problem.hint}`);
  const d = decodeYaml(r.bytes);
  if ("text" in d) return d.text;
  throw new LazarusError("UNREADABLE_FILE", `${file}:${d.line}:${d.col}: ${d.problem}; ${d.hint}`);
}

// The JSON value of a file given with flag.
export async function readJsonArg(file: string, flag: string, maxBytes?: number): Promise<unknown> {
  const text = await readTextArg(file, `the ${flag} file`, maxBytes);
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new LazarusError(
      "BAD_JSON",
      `${file} (${flag}) is not valid JSON: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
}
