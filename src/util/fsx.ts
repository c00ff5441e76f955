// Small file helpers: atomic replace (temp file, fsync, rename), durable appends.
import { open, readFile } from "node:fs/promises";
import writeFileAtomic from "write-file-atomic";
import { isErrno } from "./errors.js";

// Replace a file's contents atomically: readers see the old or the new file, never a mix.
export async function writeJsonAtomic(file: string, value: unknown, mode = 0o644): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`, { mode, fsync: true });
}

export async function writeTextAtomic(file: string, text: string, mode = 0o644): Promise<void> {
  await writeFileAtomic(file, text, { mode, fsync: true });
}

// Append one line and fsync it, so an acknowledged record survives a crash.
export async function appendLine(file: string, line: string): Promise<void> {
  const fh = await open(file, "a", 0o644);
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
