// Checkpoints: a gzip'd tar of a cell's project/, shared/ and home/ with a manifest beside it
// (every file's size and sha256). Both are written under temporary names and renamed, the
// manifest last, so a crash never leaves a checkpoint that looks whole.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, mkdir, readdir, readlink, rename, rm } from "node:fs/promises";
import path from "node:path";
import { execa } from "../util/exec.js";
import { CHECKPOINT_RE, cellPaths, checkpointStamp } from "../cells/layout.js";
import { listCheckpoints, type ObservedCheckpoint } from "../observe/observe.js";
import { writeJsonAtomic } from "../util/fsx.js";
import { LazarusError, errorMessage } from "../util/errors.js";
import { failpoint } from "../util/failpoint.js";
import { ensureRealDir } from "../util/real-dirs.js";
import { CAPS, readUntrustedJson } from "../util/safe-fs.js";

export const CHECKPOINT_DIRS = ["project", "shared", "home"] as const;

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
  archive: string; // the tar.gz file name
  files: ManifestFile[];
  symlinks: { path: string; target: string }[];
}

async function sha256File(file: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest("hex");
}

// Regular files and symbolic links under the cell's checkpointed dirs (links are never followed).
export async function walk(cellDir: string, dirs: readonly string[] = CHECKPOINT_DIRS): Promise<{ files: ManifestFile[]; symlinks: Manifest["symlinks"] }> {
  const files: ManifestFile[] = [];
  const symlinks: Manifest["symlinks"] = [];
  const visit = async (rel: string): Promise<void> => {
    const abs = path.join(cellDir, rel);
    let st;
    try {
      st = await lstat(abs);
    } catch {
      return; // gone meanwhile
    }
    if (st.isSymbolicLink()) symlinks.push({ path: rel, target: await readlink(abs) });
    else if (st.isFile()) files.push({ path: rel, size: st.size, sha256: await sha256File(abs) });
    else if (st.isDirectory()) for (const e of (await readdir(abs)).sort()) await visit(path.join(rel, e));
  };
  for (const d of dirs) await visit(d);
  return { files, symlinks };
}

export function manifestName(archive: string): string {
  return archive.replace(/\.tar\.gz$/, ".manifest.json");
}

// Take a checkpoint of the cell at cellDir. freeze: stops the cell's processes for a consistent
// copy and resumes them (always, even on error). Returns the archive's file name.
export async function takeCheckpoint(cellDir: string, cell: string, reason: string, now: number, freeze: (frozen: boolean) => Promise<void> = async () => {}): Promise<string> {
  const cp = cellPaths(cellDir);
  await ensureRealDir(cellDir, cp.checkpoints); // never into a planted link (checkpointCell records any)
  let stamp = checkpointStamp(now);
  const taken = new Set((await listCheckpoints(cp.checkpoints)).map((c) => c.name));
  if (taken.has(`${stamp}.tar.gz`)) stamp = new Date(now).toISOString().replace(/[-:.]/g, "").replace(/Z$/, "Z");
  for (let n = 1; taken.has(`${stamp}.tar.gz`); n++) stamp = checkpointStamp(now + n);
  const archive = `${stamp}.tar.gz`;
  const tmpTar = path.join(cp.checkpoints, `.tmp-${archive}`);
  const tmpManifest = path.join(cp.checkpoints, `.tmp-${manifestName(archive)}`);
  await freeze(true);
  try {
    failpoint("checkpoint:frozen");
    const { files, symlinks } = await walk(cellDir);
    for (const d of CHECKPOINT_DIRS) await mkdir(path.join(cellDir, d), { recursive: true });
    try {
      await execa("tar", ["-czf", tmpTar, "-C", cellDir, ...CHECKPOINT_DIRS], { stdin: "ignore" });
    } catch (err) {
      throw new LazarusError("CHECKPOINT_FAILED", `checkpoint of cell ${cell} failed: tar: ${errorMessage(err)}`, { cause: err });
    }
    const manifest: Manifest = { formatVersion: 1, cell, takenAt: new Date(now).toISOString(), reason, archive, files, symlinks };
    await writeJsonAtomic(tmpManifest, manifest);
  } finally {
    await freeze(false);
  }
  failpoint("checkpoint:written");
  await rename(tmpTar, path.join(cp.checkpoints, archive));
  failpoint("checkpoint:tar-renamed");
  await rename(tmpManifest, path.join(cp.checkpoints, manifestName(archive)));
  return archive;
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
    else if (e.endsWith(".tar.gz") && CHECKPOINT_RE.test(e) && !all.some((c) => c.name === e)) await rm(path.join(dir, e), { force: true });
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

// Extract a checkpoint's dirs into cellDir and check every file against the manifest.
export async function restoreCheckpoint(checkpoint: ObservedCheckpoint | string, cellDir: string, dirs: readonly string[] = CHECKPOINT_DIRS, as?: RestoreAs): Promise<void> {
  const runAs = as?.runAs ?? [];
  const file = typeof checkpoint === "string" ? checkpoint : checkpoint.file;
  const manifest = await readUntrustedJson<Manifest>(manifestName(file), CAPS.manifest);
  if (!manifest) throw new LazarusError("RESTORE_FAILED", `cannot restore ${file}: its manifest ${manifestName(file)} is missing`);
  if (runAs.length === 0) for (const d of dirs) await mkdir(path.join(cellDir, d), { recursive: true });
  const [cmd, ...prefix] = runAs.length ? runAs : ["tar"];
  const args = [...prefix, ...(as ? ["tar", "--no-same-owner"] : []), "-xzf", as ? "-" : file, "-C", as?.extractDir ?? cellDir, ...dirs];
  await execa(cmd as string, args, as ? { inputFile: file, env: as.env, extendEnv: false } : { stdin: "ignore" }).catch((err: unknown) => {
    throw new LazarusError("RESTORE_FAILED", `cannot restore ${file}: tar: ${errorMessage(err)}`, { cause: err });
  });
  const wanted = manifest.files.filter((f) => dirs.some((d) => f.path.startsWith(`${d}/`)));
  for (const f of wanted) {
    const got = await sha256File(path.join(cellDir, f.path)).catch(() => "missing");
    if (got !== f.sha256) throw new LazarusError("RESTORE_MISMATCH", `restore of ${file}: ${f.path} does not match its manifest (${got === "missing" ? "missing" : "different content"})`);
  }
}
