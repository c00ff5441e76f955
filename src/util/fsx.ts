// Small file helpers: atomic replace (temp file, fsync, rename), durable appends. Neither ever
// writes through a symbolic link (many of these files sit where members can plant one).
import { readFile } from "node:fs/promises";
import { isErrno } from "./errors.js";
import { openAppendNoFollow, writeFileNoFollow } from "./safe-fs.js";

// Replace a file's contents atomically: readers see the old or the new file, never a mix.
export async function writeJsonAtomic(file: string, value: unknown, mode = 0o644): Promise<void> {
  await writeFileNoFollow(file, `${JSON.stringify(value, null, 2)}\n`, mode);
}

export async function writeTextAtomic(file: string, text: string, mode = 0o644): Promise<void> {
  await writeFileNoFollow(file, text, mode);
}

// Append one line and fsync it, so an acknowledged record survives a crash.
export async function appendLine(file: string, line: string): Promise<void> {
  const fh = await openAppendNoFollow(file);
  try {
    await fh.write(line.endsWith("\n") ? line : `${line}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as T;
  } catch (err) {
    if (isErrno(err, "ENOENT")) return undefined;
    throw err;
  }
}
