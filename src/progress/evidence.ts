// Reading a cell's evidence of progress, bounded, as data a member wrote: project/'s refs through
// the close log's hardened git (no hooks, no fsmonitor, minimal environment), with a tight timeout
// and output cap, never through a linked .git; and a walk of shared/artifacts/ by lstat (never
// following a link), capped in entries and depth, that hashes only files whose stat changed.
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { lstat, open, readdir } from "node:fs/promises";
import path from "node:path";
import { gitRefusal, memberGit } from "../apply/member-git.js";
import { fileKind, MiB } from "../util/safe-fs.js";
import { errorMessage } from "../util/errors.js";
import type { ArtifactPrint } from "./types.js";

export const BOUNDS = {
  gitTimeoutMs: 5_000,
  gitMaxOutput: MiB, // about 12,000 refs
  maxEntries: 5_000, // files and directories walked under shared/artifacts/
  maxDepth: 16,
  hashFileMax: 16 * MiB, // larger files: their stat alone says whether they changed
  hashBudget: 64 * MiB, // bytes hashed in one observation
} as const;

// project/'s refs (`git show-ref --head`: HEAD and every ref with its commit), or why not read.
// A .git that is a link, a file, or whose HEAD, refs or packed-refs is a link is not read: what it
// points at may be outside the cell.
export async function readRefs(project: string): Promise<{ refs: string | null; note?: string }> {
  const top = await lstat(project).catch(() => undefined);
  if (!top) return { refs: null, note: "project/ is missing" };
  if (!top.isDirectory()) return { refs: null, note: `project/ is a ${fileKind(top)}` };
  const gitDir = path.join(project, ".git");
  if (!(await lstat(gitDir).catch(() => undefined))) return { refs: null }; // no repository: no commits to see
  const refused = await gitRefusal(project);
  if (refused) return { refs: null, note: `${refused}: not read as evidence` };
  for (const f of ["HEAD", "refs", "packed-refs", "objects"]) {
    const st = await lstat(path.join(gitDir, f)).catch(() => undefined);
    if (st?.isSymbolicLink()) return { refs: null, note: `project/.git/${f} is a symbolic link: not read as evidence` };
  }
  try {
    const out = await memberGit(project, ["show-ref", "--head"], process.env, {
      timeoutMs: BOUNDS.gitTimeoutMs,
      maxBuffer: BOUNDS.gitMaxOutput,
      okCodes: [1], // no refs yet
    });
    return { refs: out.trim() };
  } catch (err) {
    return { refs: null, note: `project/.git not read as evidence: ${errorMessage(err)}` };
  }
}

// What changed between two `show-ref --head` listings, in words: HEAD first, then each ref.
export function refChanges(before: string | null, now: string | null): string[] {
  if (now === null || now === before) return [];
  const parse = (s: string | null): Map<string, string> =>
    new Map(
      (s ?? "")
        .split("\n")
        .map((l) => l.trim().split(" "))
        .filter((p) => p.length === 2 && /^[0-9a-f]{7,64}$/.test(p[0] as string))
        .map(([sha, ref]) => [ref as string, sha as string]),
    );
  const was = parse(before);
  const out: string[] = [];
  for (const [ref, sha] of parse(now)) {
    if (was.get(ref) === sha) continue;
    out.push(`commit ${sha.slice(0, 12)} on ${ref}${was.has(ref) ? "" : " (new ref)"}`);
  }
  return out.length > 0 ? out : ["refs changed"];
}

interface Walk {
  files: Record<string, ArtifactPrint>;
  entries: number;
  budget: number;
  notes: string[];
}

// shared/artifacts/ now. recorded: the last recorded prints, whose hashes are kept for files whose
// stat did not change; a file whose stat changed (or a new one) is hashed within the budget.
export async function walkArtifacts(
  root: string,
  recorded: Record<string, ArtifactPrint>,
): Promise<{ files: Record<string, ArtifactPrint>; notes: string[] }> {
  const w: Walk = { files: {}, entries: 0, budget: BOUNDS.hashBudget, notes: [] };
  const top = await lstat(root).catch(() => undefined);
  if (!top) return { files: {}, notes: [] };
  if (!top.isDirectory()) return { files: {}, notes: [`shared/artifacts is a ${fileKind(top)}: not read as evidence`] };
  await visit(root, "", 0, recorded, w);
  return { files: w.files, notes: w.notes };
}

async function visit(root: string, rel: string, depth: number, recorded: Record<string, ArtifactPrint>, w: Walk) {
  if (depth > BOUNDS.maxDepth) {
    if (!w.notes.some((n) => n.includes("deeper")))
      w.notes.push(`shared/artifacts: deeper than ${BOUNDS.maxDepth} levels not read`);
    return;
  }
  const names = (await readdir(path.join(root, rel)).catch(() => [] as string[])).sort();
  for (const name of names) {
    if (++w.entries > BOUNDS.maxEntries) {
      if (!w.notes.some((n) => n.includes("entries")))
        w.notes.push(`shared/artifacts: only the first ${BOUNDS.maxEntries} entries are read`);
      return;
    }
    const r = rel ? `${rel}/${name}` : name;
    const st = await lstat(path.join(root, r)).catch(() => undefined);
    if (!st) continue;
    if (st.isDirectory()) await visit(root, r, depth + 1, recorded, w);
    else if (st.isFile()) w.files[r] = await print(path.join(root, r), st, recorded[r], w);
    // links, FIFOs, sockets, devices: not artifacts
  }
}

async function print(
  file: string,
  st: { ino: number; size: number; mtimeMs: number },
  was: ArtifactPrint | undefined,
  w: Walk,
): Promise<ArtifactPrint> {
  if (was && was[0] === st.ino && was[1] === st.size && was[2] === st.mtimeMs) return was;
  // Same size, another stat: hash to tell a touched file from a changed one.
  const needed = !was || was[1] === st.size;
  const sha = needed && st.size <= BOUNDS.hashFileMax && st.size <= w.budget ? await hashFile(file) : null;
  if (sha !== null) w.budget -= st.size;
  return [st.ino, st.size, st.mtimeMs, sha];
}

// sha256 of a regular file, opened without following a link or blocking; null when it cannot be.
async function hashFile(file: string): Promise<string | null> {
  const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY } = constants;
  const fh = await open(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY).catch(() => undefined);
  if (!fh) return null;
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > BOUNDS.hashFileMax) return null;
    const h = createHash("sha256");
    const buf = Buffer.allocUnsafe(256 * 1024);
    let pos = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
      if (pos > BOUNDS.hashFileMax) return null;
    }
    return h.digest("hex");
  } catch {
    return null;
  } finally {
    await fh.close();
  }
}

// The artifacts new or changed since recorded, in words. A file whose stat changed but whose
// content hashes the same (a touched mtime) is not a change; a removed file is not evidence.
export function artifactChanges(before: Record<string, ArtifactPrint>, now: Record<string, ArtifactPrint>): string[] {
  const out: string[] = [];
  for (const [rel, p] of Object.entries(now)) {
    const was = before[rel];
    if (!was) out.push(`shared/artifacts/${rel} new`);
    else if (was[0] === p[0] && was[1] === p[1] && was[2] === p[2]) continue;
    else if (was[1] === p[1] && was[3] !== null && was[3] === p[3]) continue;
    else out.push(`shared/artifacts/${rel} changed`);
  }
  return out;
}
