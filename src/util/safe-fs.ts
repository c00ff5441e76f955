// Files inside cells, where members can plant symbolic links, FIFOs and devices. Lazarus opens
// them without following a link (O_NOFOLLOW), without ever blocking (O_NONBLOCK), accepts only
// regular files (checked with fstat on the open descriptor) and caps what it reads.
import { randomBytes } from "node:crypto";
import { constants, type Stats } from "node:fs";
import { lstat, open, rename, unlink, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { LazarusError, errorMessage } from "./errors.js";

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_APPEND, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY, O_DIRECTORY } = constants;

export const KiB = 1024;
export const MiB = 1024 * KiB;

// The most Lazarus reads of each kind of file found in a cell.
export const CAPS = {
  exitFile: 64 * KiB, // .lazarus/logs/<home>.exit
  token: 4 * KiB, // .lazarus/invites/<home>.token
  health: MiB, // .lazarus/model-health.jsonl
  record: 16 * MiB, // .lazarus/cell.json
  manifest: 64 * MiB, // a checkpoint's .manifest.json
} as const;

export type UntrustedRead =
  { ok: true; text: string; mtimeMs: number } | { ok: false; missing: boolean; reason: string };

// What a non-regular file is, for messages.
export function fileKind(st: Stats): string {
  if (st.isSymbolicLink()) return "symbolic link";
  if (st.isDirectory()) return "directory";
  if (st.isFIFO()) return "FIFO";
  if (st.isSocket()) return "socket";
  if (st.isCharacterDevice() || st.isBlockDevice()) return "device";
  return st.isFile() ? "regular file" : "special file";
}

function openProblem(err: unknown): { missing: boolean; reason: string } {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return { missing: true, reason: "missing" };
  if (code === "ELOOP") return { missing: false, reason: "is a symbolic link" };
  if (code === "ENXIO") return { missing: false, reason: "is a FIFO or socket" };
  return { missing: false, reason: `cannot be opened (${code ?? errorMessage(err)})` };
}

// The first component between root (exclusive) and file's directory that is not a real
// directory, described; undefined when all are. A file outside root is always refused.
export async function plantedComponent(root: string, file: string): Promise<string | undefined> {
  const rel = path.relative(root, path.dirname(file));
  if (rel.startsWith("..") || path.isAbsolute(rel)) return `${file} is outside ${root}`;
  let p = root;
  for (const part of rel ? rel.split(path.sep) : []) {
    p = path.join(p, part);
    const st = await lstat(p).catch(() => undefined);
    if (st && !st.isDirectory()) return `${p} is a ${fileKind(st)}, not a directory`;
  }
  return undefined;
}

// Read a file a member may have written. root: when given, no directory between it and the file
// may be a link either. Never throws for what a member can plant; the reason says what was wrong.
export async function readUntrusted(file: string, maxBytes: number, root?: string): Promise<UntrustedRead> {
  const planted = root ? await plantedComponent(root, file) : undefined;
  if (planted) return { ok: false, missing: false, reason: planted };
  let fh: FileHandle;
  try {
    fh = await open(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  } catch (err) {
    return { ok: false, ...openProblem(err) };
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return { ok: false, missing: false, reason: `is a ${fileKind(st)}, not a regular file` };
    if (st.size > maxBytes)
      return { ok: false, missing: false, reason: `is ${st.size} bytes, more than the ${maxBytes} allowed` };
    // A buffer for the size fstat gave and one byte more (to see the end), grown by doubling when
    // the file says less than it holds, never past the cap and one byte: not the cap itself (16 MiB
    // for a cell record), which cost a 16 MiB zero-filled buffer per cell observed.
    let buf = Buffer.allocUnsafe(Math.min(maxBytes + 1, Math.max(st.size + 1, 4 * KiB)));
    let got = 0;
    for (;;) {
      if (got === buf.length) {
        const bigger = Buffer.allocUnsafe(Math.min(maxBytes + 1, buf.length * 2));
        buf.copy(bigger, 0, 0, got);
        buf = bigger;
      }
      const { bytesRead } = await fh.read(buf, got, buf.length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
      if (got > maxBytes) return { ok: false, missing: false, reason: `grew past the ${maxBytes} bytes allowed` };
    }
    return { ok: true, text: buf.subarray(0, got).toString("utf8"), mtimeMs: st.mtimeMs };
  } catch (err) {
    return { ok: false, missing: false, reason: `cannot be read (${errorMessage(err)})` };
  } finally {
    await fh.close();
  }
}

// A JSON file Lazarus itself wrote into a cell (a record, a manifest): undefined when missing,
// a LazarusError naming the file when it is anything but a regular file of valid JSON.
export async function readUntrustedJson<T>(file: string, maxBytes: number, root?: string): Promise<T | undefined> {
  const r = await readUntrusted(file, maxBytes, root);
  if (!r.ok) {
    if (r.missing) return undefined;
    throw new LazarusError("UNTRUSTED_FILE", `${file} ${r.reason}`);
  }
  try {
    return JSON.parse(r.text) as T;
  } catch (err) {
    throw new LazarusError("UNTRUSTED_FILE", `${file} is not valid JSON: ${errorMessage(err)}`);
  }
}

// The modification time of a file a member touches (a heartbeat), by lstat: a link or anything
// but a regular file has none.
export async function untrustedMtime(
  file: string,
  root?: string,
): Promise<{ ok: true; mtimeMs: number } | { ok: false; missing: boolean; reason: string }> {
  const planted = root ? await plantedComponent(root, file) : undefined;
  if (planted) return { ok: false, missing: false, reason: planted };
  const st = await lstat(file).catch((err: unknown) => err as NodeJS.ErrnoException);
  if (st instanceof Error) return { ok: false, ...openProblem(st) };
  if (!st.isFile()) return { ok: false, missing: false, reason: `is a ${fileKind(st)}, not a regular file` };
  return { ok: true, mtimeMs: st.mtimeMs };
}

// Open a file for appending without following a link or blocking; refuses anything but a
// regular file, naming it.
export async function openAppendNoFollow(file: string, mode = 0o644): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(file, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, mode);
  } catch (err) {
    throw refusedWrite(file, { err });
  }
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close();
    throw refusedWrite(file, { kind: fileKind(st) });
  }
  return fh;
}

// Why a file was not written: its open failed (err, or only its errno code: the Perl spawner
// opens members' logs the same way and reports the code), or it is no regular file (kind).
export function refusedWrite(file: string, why: { err: unknown } | { code: string } | { kind: string }): LazarusError {
  if ("kind" in why)
    return new LazarusError("UNSAFE_FILE", `refusing to write ${file}: it is a ${why.kind}, not a regular file`);
  const err = "err" in why ? why.err : Object.assign(new Error(why.code), { code: why.code });
  const p = openProblem(err);
  // Opened with O_CREAT, a missing file is a missing directory: say the code, not "missing".
  return new LazarusError(
    "UNSAFE_FILE",
    `refusing to write ${file}: it ${p.missing ? "cannot be opened (ENOENT)" : p.reason}`,
    { cause: err },
  );
}

// Create the file if missing, never writing through a link or blocking on a FIFO. Returns why it
// was left alone, or undefined when it is a regular file now.
export async function touchNoFollow(file: string, mode = 0o644): Promise<string | undefined> {
  try {
    await (await openAppendNoFollow(file, mode)).close();
    return undefined;
  } catch (err) {
    return errorMessage(err);
  }
}

// Replace a file atomically (temp file, fsync, rename) without ever writing through a link: the
// temporary file is created exclusively, and rename replaces a planted link instead of following it.
export async function writeFileNoFollow(file: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${randomBytes(6).toString("hex")}`);
  const fh = await open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK, mode);
  try {
    try {
      await fh.chmod(mode); // exactly this mode, whatever the umask
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  const d = await open(dir, O_RDONLY | O_DIRECTORY).catch(() => undefined);
  if (d)
    await d
      .sync()
      .catch(() => undefined)
      .finally(() => d.close());
}
