// Checkpoints: a compressed tar (zstd or gzip) of a cell's project/, shared/ and home/ with a
// manifest beside it (every file's size and sha256, the archive's own sha256 and compression).
// One pass: the system tar reads the tree (never following a link, never opening a FIFO or a
// device), its stream goes to the compressor and, alongside, to a tar parser that hashes each
// member's bytes as they pass. Both files are written under temporary names, fsynced and renamed,
// the manifest last, so a crash never leaves a checkpoint that looks whole.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { accessSync, constants, createReadStream } from "node:fs";
import { lstat, mkdir, open, readdir, rename, rm } from "node:fs/promises";
import { once } from "node:events";
import path from "node:path";
import { execa } from "../util/exec.js";
import type { Parser, ReadEntry } from "tar";
import { CHECKPOINT_RE, cellPaths, checkpointStamp } from "../cells/layout.js";
import { listCheckpoints } from "./list.js";
import type { ObservedCheckpoint } from "../observe/types.js";
import { syncDir, writeJsonAtomic } from "../util/fsx.js";
import { LazarusError, errorMessage } from "../util/errors.js";
import { failpoint, pausepoint } from "../util/failpoint.js";
import { ensureRealDir } from "../util/real-dirs.js";
import { CAPS, readUntrustedJson } from "../util/safe-fs.js";
import type { TarSource } from "../backends/backend.js";
import { SparseHash, paxRecords, sparseHeader } from "./sparse.js";
import { checkTreeSize, formatSize, tooLarge } from "./size.js";

export const CHECKPOINT_DIRS = ["project", "shared", "home"] as const;

export const COMPRESSIONS = ["gzip", "zstd"] as const;
export type Compression = (typeof COMPRESSIONS)[number];
const EXTENSION: Record<Compression, string> = { gzip: ".tar.gz", zstd: ".tar.zst" };

export interface ManifestFile {
  path: string; // relative to the cell dir, e.g. project/README.md
  size: number;
  sha256: string;
}

export interface Manifest {
  formatVersion: 1;
  cell: string;
  takenAt: string;
  reason: string;
  archive: string; // the archive's file name (.tar.zst or .tar.gz)
  compression?: Compression; // absent in checkpoints made before it was a choice: gzip
  archiveSha256?: string; // absent in those too; checked before anything is extracted
  archiveSize?: number;
  files: ManifestFile[];
  symlinks: { path: string; target: string }[];
}

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY } = constants;

// Whether an executable of that name is on PATH (looked up once per process).
const onPath = new Map<string, string | undefined>();
export function findCommand(name: string): string | undefined {
  if (!onPath.has(name)) {
    let found: string | undefined;
    for (const dir of (process.env.PATH ?? "/usr/bin:/bin").split(":")) {
      if (!dir) continue;
      const p = path.join(dir, name);
      try {
        accessSync(p, constants.X_OK);
        found = p;
        break;
      } catch {
        // not here
      }
    }
    onPath.set(name, found);
  }
  return onPath.get(name);
}

// What a checkpoint uses when the cell's spec does not say: zstd where the host has it.
export function defaultCompression(): Compression {
  return findCommand("zstd") ? "zstd" : "gzip";
}

// The compressor reading tar on stdin and writing to stdout: zstd on every core at its default
// level (3); gzip at its default level (6), through pigz (parallel, same format) when present.
function compressor(c: Compression): string[] {
  if (c === "zstd") return ["zstd", "-T0", "-3", "-q", "-c"];
  return findCommand("pigz") ? ["pigz", "-6", "-c"] : ["gzip", "-6", "-c"];
}

export function isCompression(v: unknown): v is Compression {
  return (COMPRESSIONS as readonly unknown[]).includes(v);
}

export function compressionOf(archive: string): Compression | undefined {
  return COMPRESSIONS.find((c) => archive.endsWith(EXTENSION[c]));
}

async function sha256File(file: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest("hex");
}

// The sha256 of a file in a tree a member may touch: never through a link, never a FIFO or a
// device (which could block or show a host file); undefined when it is not a regular file.
async function sha256Untrusted(file: string): Promise<string | undefined> {
  const fh = await open(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY).catch(() => undefined);
  if (!fh) return undefined;
  try {
    if (!(await fh.stat()).isFile()) return undefined;
    const h = createHash("sha256");
    for await (const chunk of fh.createReadStream({ autoClose: false })) h.update(chunk as Buffer);
    return h.digest("hex");
  } finally {
    await fh.close();
  }
}

// A child's exit, with the tail of its stderr for messages.
function exited(child: ReturnType<typeof spawn>, name: string): Promise<void> {
  let err = "";
  child.stderr?.on("data", (d: Buffer) => {
    err = (err + d.toString()).slice(-2000);
  });
  return new Promise((resolve, reject) => {
    child.on("error", (e) => reject(new Error(`${name}: ${errorMessage(e)}`)));
    child.on("close", (code, signal) => {
      if (code === 0) resolve();
      else
        reject(
          new Error(
            `${name} ${signal ? `killed by ${signal}` : `exited ${code}`}${err.trim() ? `: ${err.trim()}` : ""}`,
          ),
        );
    });
  });
}

interface Listing {
  files: ManifestFile[];
  symlinks: Manifest["symlinks"];
}

// A tar parser that lists the regular files (size, sha256 of their content: sparse files with
// their holes as zeros, see sparse.ts), hard links (as the file they link to) and symbolic links
// of the stream written to it. It stops with CHECKPOINT_TOO_LARGE as soon as the files' sizes,
// read from their headers before any of their bytes, pass maxBytes.
// node-tar is loaded only when a checkpoint is taken, not by every command.
async function lister(cell: string, maxBytes: number): Promise<{ parser: Parser; done: Promise<Listing> }> {
  const { Parser } = await import("tar");
  const files: ManifestFile[] = [];
  const symlinks: Manifest["symlinks"] = [];
  const byPath = new Map<string, ManifestFile>();
  const parser = new Parser({ strict: true });
  let fail: (err: unknown) => void = () => {};
  let total = 0;
  let pax = new Map<string, string>(); // the extended header of the next entry
  parser.on("meta", (text: string) => (pax = paxRecords(text)));
  // A name that is not valid UTF-8 cannot be named in the manifest; it is archived, not listed.
  const nameable = (p: string): boolean => !p.includes("\uFFFD");
  const listFile = (p: string, size: number, sha256: string) => {
    const f = { path: p, size, sha256 };
    if (nameable(p)) files.push(f);
    byPath.set(p, f);
  };
  parser.on("entry", (e: ReadEntry) => {
    const sparse = /(^|\/)GNUSparseFile\.\d+\/[^/]+$/.test(e.path) ? sparseHeader(pax) : undefined;
    pax = new Map();
    const p = (sparse?.name ?? e.path).replace(/\/+$/, "");
    if (e.type === "File" || e.type === "OldFile" || e.type === "ContiguousFile") {
      total += sparse?.realSize ?? e.size;
      if (total > maxBytes) {
        fail(tooLarge(cell, maxBytes, `its files came to more than that while tar read them (at ${p})`));
        return; // the entry is never resumed: nothing of it is read
      }
      if (sparse) return hashSparse(e, sparse.realSize, (sha) => listFile(p, sparse.realSize, sha), fail);
      const h = createHash("sha256");
      e.on("data", (c: Buffer) => h.update(c));
      e.on("end", () => listFile(p, e.size, h.digest("hex")));
      return;
    }
    if (e.type === "Link" && nameable(p) && e.linkpath) {
      const target = byPath.get(e.linkpath.replace(/\/+$/, ""));
      if (target) listFile(p, target.size, target.sha256);
    } else if (e.type === "SymbolicLink" && nameable(p)) symlinks.push({ path: p, target: e.linkpath ?? "" });
    e.resume();
  });
  const done = new Promise<Listing>((resolve, reject) => {
    fail = reject;
    parser.on("error", reject);
    parser.on("warn", (code: string, msg: string | Error) =>
      reject(new Error(`tar stream: ${code} ${errorMessage(msg)}`)),
    );
    parser.on("end", () => resolve({ files, symlinks }));
  });
  return { parser, done };
}

// Hash a sparse entry's content: the entry is paused while its holes are hashed, so the parser
// (and tar behind it) waits, and entries stay in order.
function hashSparse(
  e: ReadEntry,
  realSize: number,
  listed: (sha256: string) => void,
  fail: (err: unknown) => void,
): void {
  const sh = new SparseHash(realSize, e.size);
  let work = Promise.resolve();
  e.on("data", (c: Buffer) => {
    e.pause();
    work = work.then(() => sh.write(c)).then(() => void e.resume(), fail);
  });
  e.on("end", () => {
    try {
      listed(sh.digest());
    } catch (err) {
      fail(err);
    }
  });
}

// How the system tar writes a checkpoint: names sorted; posix format, so that a sparse file is
// archived as its data and a map of its holes (format 1.0, which any tar parser frames right), with
// the pax headers of atime and ctime left out and their names fixed (the same tree, the same tar).
export const TAR_CREATE_FLAGS = [
  "--sort=name",
  "--blocking-factor=128",
  "--format=posix",
  "--sparse",
  "--sparse-version=1.0",
  "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
] as const;

// Past twice the bound plus this, tar's own output is stopped whatever the headers say (a tree of
// very many small or empty files is mostly headers).
const RAW_SLACK = 1024 * 1024;

// Archive dirs of cellDir into file (created exclusively, fsynced) in one pass: tar's stream is
// compressed and listed at once. Returns the listing. Stopped with CHECKPOINT_TOO_LARGE when the
// files' sizes pass maxBytes (see lister), or tar's output 2 × maxBytes (+1Mi).
// source: where the tar comes from when the tree is on another host (see TarSource); its bytes
// are hashed as they pass and checked against the sha256 that host reports.
async function archive(
  cell: string,
  cellDir: string,
  dirs: readonly string[],
  compression: Compression,
  file: string,
  maxBytes: number,
  source?: TarSource,
): Promise<Listing> {
  const [cmd, ...args] = compressor(compression);
  const { parser, done } = await lister(cell, maxBytes);
  await rm(file, { force: true });
  const out = await open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    const tar = source
      ? spawn(source.file, source.args, { stdio: ["ignore", "pipe", "pipe"] })
      : spawn("tar", [...TAR_CREATE_FLAGS, "-cf", "-", "-C", cellDir, "--", ...dirs], {
          stdio: ["ignore", "pipe", "pipe"],
        });
    const raw = createHash("sha256");
    let sourceErr = "";
    if (source) tar.stderr?.on("data", (d: Buffer) => (sourceErr = (sourceErr + d.toString()).slice(-4000)));
    const comp = spawn(cmd as string, args, { stdio: ["pipe", out.fd, "pipe"] });
    const tarDone = exited(tar, "tar");
    const compDone = exited(comp, cmd as string);
    const sink = comp.stdin!;
    sink.on("error", () => {}); // a dead compressor shows in its exit
    // On any failure both children are ended (by their own pids), so nothing waits on a pipe.
    // The first failure is the one reported (the others follow from the kills).
    let failed: unknown;
    const abort = (err: unknown) => {
      failed ??= err;
      tar.kill("SIGKILL");
      comp.kill("SIGKILL");
    };
    const listed = done.catch((err: unknown) => {
      abort(err);
      return err as Error;
    });
    void tarDone.catch(abort);
    void compDone.catch(abort);
    let rawBytes = 0;
    const feed = (async () => {
      try {
        for await (const chunk of tar.stdout!) {
          if (failed) continue; // drain what is left of tar's output
          rawBytes += (chunk as Buffer).length;
          if (rawBytes > 2 * maxBytes + RAW_SLACK) {
            abort(tooLarge(cell, maxBytes, `tar's output passed ${formatSize(2 * maxBytes + RAW_SLACK)}`));
            continue;
          }
          raw.update(chunk as Buffer);
          const okSink = sink.write(chunk);
          const okParser = parser.write(chunk as Buffer);
          if (!okSink) await Promise.race([once(sink, "drain").catch(() => {}), compDone.catch(() => {})]);
          if (!okParser && !failed) await Promise.race([once(parser, "drain"), listed]);
        }
      } catch (err) {
        abort(err);
      } finally {
        sink.end();
        parser.end();
      }
    })();
    await Promise.allSettled([feed, tarDone, compDone]);
    const listing = await listed;
    if (failed !== undefined) throw failed;
    if (listing instanceof Error) throw listing;
    source?.check(sourceErr, raw.digest("hex"));
    await out.sync();
    return listing;
  } finally {
    await out.close();
  }
}

export function manifestName(archive: string): string {
  return archive.replace(/\.tar\.(?:gz|zst)$/, ".manifest.json");
}

// Take a checkpoint of the cell at cellDir. freeze: stops the cell's processes for a consistent
// copy and resumes them (always, even on error). Returns the archive's file name.
// maxBytes: the size bound (see size.ts), checked on the tree before the cell is frozen (a local
// tree here, a remote one by its source's walk there) and again as tar reads. Past it nothing is kept of
// this checkpoint, and CHECKPOINT_TOO_LARGE is thrown.
export async function takeCheckpoint(
  cellDir: string,
  cell: string,
  reason: string,
  now: number,
  freeze: (frozen: boolean) => Promise<void> = async () => {},
  compression: Compression = defaultCompression(),
  source?: TarSource,
  maxBytes: number = Number.MAX_SAFE_INTEGER,
): Promise<string> {
  const cp = cellPaths(cellDir);
  if (compression === "zstd" && !findCommand("zstd")) {
    throw new LazarusError(
      "CHECKPOINT_FAILED",
      `checkpoint of cell ${cell} failed: checkpoint.compression is zstd but this host has no zstd command; install zstd, or set checkpoint.compression: gzip`,
    );
  }
  await ensureRealDir(cellDir, cp.checkpoints); // never into a planted link (checkpointCell records any)
  if (!source) await checkTreeSize(cellDir, cell, CHECKPOINT_DIRS, maxBytes);
  else if (source.size) await checkTreeSize(cellDir, cell, CHECKPOINT_DIRS, maxBytes, source.size);
  const ext = EXTENSION[compression];
  const stampOf = (name: string) => CHECKPOINT_RE.exec(name)?.[1];
  let stamp = checkpointStamp(now);
  const taken = new Set((await listCheckpoints(cp.checkpoints)).map((c) => stampOf(c.name)));
  if (taken.has(stamp)) stamp = new Date(now).toISOString().replace(/[-:.]/g, "").replace(/Z$/, "Z");
  for (let n = 1; taken.has(stamp); n++) stamp = checkpointStamp(now + n);
  const archiveName = `${stamp}${ext}`;
  const tmpTar = path.join(cp.checkpoints, `.tmp-${archiveName}`);
  const tmpManifest = path.join(cp.checkpoints, `.tmp-${manifestName(archiveName)}`);
  let listing: Listing;
  await freeze(true);
  try {
    failpoint("checkpoint:frozen");
    await pausepoint("checkpoint:frozen");
    for (const d of CHECKPOINT_DIRS) await mkdir(path.join(cellDir, d), { recursive: true });
    try {
      listing = await archive(cell, cellDir, CHECKPOINT_DIRS, compression, tmpTar, maxBytes, source);
    } catch (err) {
      await rm(tmpTar, { force: true });
      if (err instanceof LazarusError && err.code === "CHECKPOINT_TOO_LARGE") throw err;
      throw new LazarusError("CHECKPOINT_FAILED", `checkpoint of cell ${cell} failed: ${errorMessage(err)}`, {
        cause: err,
      });
    }
  } finally {
    await freeze(false);
  }
  const archiveSha256 = await sha256File(tmpTar);
  const archiveSize = (await lstat(tmpTar)).size;
  const manifest: Manifest = {
    formatVersion: 1,
    cell,
    takenAt: new Date(now).toISOString(),
    reason,
    archive: archiveName,
    compression,
    archiveSha256,
    archiveSize,
    ...listing,
  };
  await writeJsonAtomic(tmpManifest, manifest);
  failpoint("checkpoint:written");
  // A leftover archive of the same stamp in the other format (a crash between the two renames)
  // must not pair with this manifest.
  for (const c of COMPRESSIONS)
    if (c !== compression) await rm(path.join(cp.checkpoints, `${stamp}${EXTENSION[c]}`), { force: true });
  await rename(tmpTar, path.join(cp.checkpoints, archiveName));
  failpoint("checkpoint:tar-renamed");
  await rename(tmpManifest, path.join(cp.checkpoints, manifestName(archiveName)));
  await syncDir(cp.checkpoints);
  return archiveName;
}

// Delete all but the newest `keep` whole checkpoints (and any temporary leftovers).
// A dir that is not a real directory (a planted link) is left alone.
// spare: a checkpoint file that is not rotated away (one about to be restored), nor counted.
export async function rotateCheckpoints(dir: string, keep: number, spare?: string): Promise<string[]> {
  if (!(await lstat(dir).catch(() => undefined))?.isDirectory()) return [];
  const all = await listCheckpoints(dir);
  const rotating = all.filter((c) => c.file !== spare);
  const drop = rotating.slice(0, Math.max(0, rotating.length - keep));
  for (const c of drop) {
    await rm(manifestName(c.file), { force: true }); // manifest first: a half-deleted pair never looks whole
    await rm(c.file, { force: true });
  }
  for (const e of await readdir(dir).catch(() => [] as string[])) {
    if (e.startsWith(".tmp-")) await rm(path.join(dir, e), { force: true });
    else if (CHECKPOINT_RE.test(e) && !all.some((c) => c.name === e)) await rm(path.join(dir, e), { force: true });
  }
  return drop.map((c) => c.name);
}

// How tar runs when not as Lazarus itself: a command prefix (setpriv …) so it runs as the cell's
// own uid, reading the archive from stdin, extracting into extractDir (where that prefix shows
// the cell), with env.
export interface RestoreAs {
  runAs: string[];
  env: Record<string, string>;
  extractDir: string;
}

// A checkpoint's manifest, after checking its archive against the archive's recorded sha256
// (checkpoints made before it was recorded are checked file by file after extraction only).
// Nothing is extracted from an archive that fails here.
export async function verifyCheckpoint(file: string): Promise<Manifest & { compression: Compression }> {
  const manifest = await readUntrustedJson<Manifest>(manifestName(file), CAPS.manifest);
  if (!manifest)
    throw new LazarusError("RESTORE_FAILED", `cannot restore ${file}: its manifest ${manifestName(file)} is missing`);
  const compression = manifest.compression ?? "gzip";
  if (!isCompression(compression))
    throw new LazarusError(
      "RESTORE_FAILED",
      `cannot restore ${file}: its manifest names an unknown compression ${JSON.stringify(compression)}`,
    );
  if (compressionOf(file) !== undefined && compressionOf(file) !== compression) {
    throw new LazarusError(
      "RESTORE_MISMATCH",
      `cannot restore ${file}: its manifest says ${compression}, its name does not`,
    );
  }
  if (manifest.archiveSha256 !== undefined) {
    const got = await sha256Untrusted(file);
    if (got !== manifest.archiveSha256) {
      throw new LazarusError(
        "RESTORE_MISMATCH",
        `cannot restore ${file}: the archive does not match the sha256 in its manifest (${got === undefined ? "not a regular file" : "corrupted or replaced"}); nothing was extracted`,
      );
    }
  }
  if (compression === "zstd" && !findCommand("zstd"))
    throw new LazarusError(
      "RESTORE_FAILED",
      `cannot restore ${file}: it is compressed with zstd and this host has no zstd command; install zstd`,
    );
  return { ...manifest, compression };
}

// Extract a checkpoint's dirs into cellDir and check every file against the manifest.
export async function restoreCheckpoint(
  checkpoint: ObservedCheckpoint | string,
  cellDir: string,
  dirs: readonly string[] = CHECKPOINT_DIRS,
  as?: RestoreAs,
): Promise<void> {
  const runAs = as?.runAs ?? [];
  const file = typeof checkpoint === "string" ? checkpoint : checkpoint.file;
  const manifest = await verifyCheckpoint(file);
  if (runAs.length === 0) for (const d of dirs) await mkdir(path.join(cellDir, d), { recursive: true });
  const [cmd, ...prefix] = runAs.length ? runAs : ["tar"];
  const decompress = manifest.compression === "zstd" ? "--zstd" : "--gzip";
  const args = [
    ...prefix,
    ...(as ? ["tar", "--no-same-owner", "--no-same-permissions"] : []),
    decompress,
    "-xf",
    as ? "-" : file,
    "-C",
    as?.extractDir ?? cellDir,
    ...dirs,
  ];
  await execa(cmd as string, args, as ? { inputFile: file, env: as.env, extendEnv: false } : { stdin: "ignore" }).catch(
    (err: unknown) => {
      throw new LazarusError("RESTORE_FAILED", `cannot restore ${file}: tar: ${errorMessage(err)}`, { cause: err });
    },
  );
  const wanted = manifest.files.filter((f) => dirs.some((d) => f.path.startsWith(`${d}/`)));
  for (const f of wanted) {
    const got = await sha256Untrusted(path.join(cellDir, f.path)).catch(() => undefined);
    if (got !== f.sha256)
      throw new LazarusError(
        "RESTORE_MISMATCH",
        `restore of ${file}: ${f.path} does not match its manifest (${got === undefined ? "missing or not a regular file" : "different content"})`,
      );
  }
}

// A checkpoint's tar, decompressed, with its sha256 (to send it to a remote host). Check the
// archive first (verifyCheckpoint).
export async function rawTar(file: string, compression: Compression): Promise<{ tar: Buffer; sha256: string }> {
  const r = await execa(compression === "zstd" ? "zstd" : "gzip", ["-dc", "--", file], {
    encoding: "buffer",
    stdin: "ignore",
    maxBuffer: 4 * 1024 ** 3,
  }).catch((err: unknown) => {
    throw new LazarusError("RESTORE_FAILED", `cannot read ${file}: ${errorMessage(err)}`, { cause: err });
  });
  const tar = Buffer.from(r.stdout as Uint8Array);
  return { tar, sha256: createHash("sha256").update(tar).digest("hex") };
}
