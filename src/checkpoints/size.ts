// The size bound of a checkpoint. What counts is the apparent size of the regular files (st_size,
// holes included), each inode once: that is what the archive's listing hashes and what restore
// reads back to check, so it bounds the work whatever the files' allocated blocks are (a sparse
// file of 4T has almost none, and would still be hashed, and checked at restore, byte by byte).
import { lstat, readdir } from "node:fs/promises";
import path from "node:path";
import { LazarusError, isErrno } from "../util/errors.js";
import { formatSize } from "../config/quantity.js";

export { formatSize };

export interface TreeSize {
  bytes: number; // summed until it passed the bound (then a lower bound of the whole)
  over: boolean;
  largest?: { path: string; size: number }; // relative to the root
}

// Sum the apparent sizes of the regular files under root/dirs, never following a link, and stop
// as soon as the sum passes maxBytes. A name that vanishes while walked (a member at work) is
// skipped.
export async function treeSize(root: string, dirs: readonly string[], maxBytes: number): Promise<TreeSize> {
  const seen = new Set<string>();
  const out: TreeSize = { bytes: 0, over: false };
  const stack = dirs.map((d) => path.join(root, d));
  while (stack.length > 0 && !out.over) {
    const p = stack.pop() as string;
    const st = await lstat(p).catch((err: unknown) =>
      isErrno(err, "ENOENT") || isErrno(err, "ENOTDIR") ? undefined : Promise.reject(err),
    );
    if (!st) continue;
    if (st.isDirectory()) {
      const names = await readdir(p).catch((err: unknown) =>
        isErrno(err, "ENOENT") || isErrno(err, "ENOTDIR") ? [] : Promise.reject(err),
      );
      for (const n of names) stack.push(path.join(p, n));
      continue;
    }
    if (!st.isFile()) continue;
    const inode = `${st.dev}:${st.ino}`;
    if (st.nlink > 1 && seen.has(inode)) continue;
    if (st.nlink > 1) seen.add(inode);
    out.bytes += st.size;
    if (!out.largest || st.size > out.largest.size) out.largest = { path: path.relative(root, p), size: st.size };
    out.over = out.bytes > maxBytes;
  }
  return out;
}

// The error of a checkpoint past its bound; what: where it was measured.
export function tooLarge(cell: string, maxBytes: number, what: string): LazarusError {
  return new LazarusError(
    "CHECKPOINT_TOO_LARGE",
    `checkpoint of cell ${cell} refused: ${what}, more than its size bound checkpoint.maxSize ${formatSize(maxBytes)} (apparent sizes, holes of sparse files included); nothing was archived and the earlier checkpoints are kept. Remove or shrink the files, or raise spec.checkpoint.maxSize (up to the host's LAZARUS_CHECKPOINT_MAX_SIZE)`,
  );
}

// Refuse before any archiving when the tree is already past the bound. measure: where the tree
// is walked (default: here, under cellDir; a remote backend walks its host's).
export async function checkTreeSize(
  cellDir: string,
  cell: string,
  dirs: readonly string[],
  maxBytes: number,
  measure?: (dirs: readonly string[], maxBytes: number) => Promise<TreeSize>,
): Promise<void> {
  const t = measure ? await measure(dirs, maxBytes) : await treeSize(cellDir, dirs, maxBytes);
  if (!t.over) return;
  const largest = t.largest
    ? ` (largest${t.largest.path ? `: ${t.largest.path},` : " file:"} ${formatSize(t.largest.size)})`
    : "";
  throw tooLarge(cell, maxBytes, `its files come to at least ${formatSize(t.bytes)}${largest}`);
}
