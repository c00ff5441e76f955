// The whole checkpoints in a directory (a cell's checkpoints/, an archive entry's): what observe
// reports and what rotation and restore pick from.
import { lstat, readdir } from "node:fs/promises";
import path from "node:path";
import { CHECKPOINT_RE, stampTime } from "../cells/layout.js";
import type { ObservedCheckpoint } from "../observe/types.js";

// Whole checkpoints in a directory: a .tar.zst or .tar.gz with its .manifest.json.
// A checkpoints dir that is not a real directory (a planted link) has none.
export async function listCheckpoints(dir: string): Promise<ObservedCheckpoint[]> {
  let entries: string[];
  try {
    if (!(await lstat(dir)).isDirectory()) return [];
    entries = await readdir(dir);
  } catch {
    return [];
  }
  const names = new Set(entries);
  const out: ObservedCheckpoint[] = [];
  for (const e of entries) {
    const m = CHECKPOINT_RE.exec(e);
    if (!m || !names.has(`${m[1]}.manifest.json`)) continue;
    out.push({ file: path.join(dir, e), name: e, takenAt: stampTime(m[1] as string) });
  }
  return out.sort((a, b) => a.takenAt - b.takenAt);
}
