// What killed writers leave behind, swept under the state-dir lock: temp files of the atomic
// writer (<file>.<pid>.<12 hex>.tmp) whose writer is dead or that are old, those of the
// write-file-atomic used before (<file>.<digits>, for the files it wrote) once old, and
// lock-takeover guards (<lock>.break-<id>) whose holder is dead.
import { readdir, stat, unlink } from "node:fs/promises";
import path from "node:path";
import { isAlive } from "../host/proc.js";
import type { StatePaths } from "../cells/layout.js";
import { TEMP_RE } from "../util/fsx.js";
import { readSeen, verdict } from "./record.js";

export const STALE_TEMP_MS = 10_000;
const LEGACY_RE = /^(cell\.json|credentials\.json|close\.log|journal\.json|ledger\.head\.json|status\.json)\.\d{1,10}$/;

// Remove stale temp files and dead guards in the state dir and every cell's .lazarus/; returns their paths.
export async function sweepTempFiles(paths: StatePaths, now = Date.now()): Promise<string[]> {
  const root = path.dirname(paths.ledger);
  const dirs = new Set([
    root,
    path.dirname(paths.lock),
    path.join(root, "gitops"),
    path.join(root, "tombstones"),
    path.join(root, "frozen"),
    path.join(root, "journal.d"),
  ]);
  for (const place of [paths.cells, paths.graveyard]) {
    for (const name of await readdir(place).catch(() => [] as string[])) {
      dirs.add(path.join(place, name, ".lazarus"));
      dirs.add(path.join(place, name, ".lazarus", "invites"));
      dirs.add(path.join(place, name, ".lazarus", "secrets"));
    }
  }
  const removed: string[] = [];
  const guardPrefix = `${path.basename(paths.lock)}.break-`;
  for (const dir of dirs) {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (!e.isFile()) continue;
      const file = path.join(dir, e.name);
      const stale =
        dir === path.dirname(paths.lock) && e.name.startsWith(guardPrefix)
          ? await deadGuard(file)
          : await staleTemp(file, e.name, now);
      if (
        stale &&
        (await unlink(file).then(
          () => true,
          () => false,
        ))
      )
        removed.push(file);
    }
  }
  return removed;
}

async function staleTemp(file: string, name: string, now: number): Promise<boolean> {
  const m = TEMP_RE.exec(name);
  if (!m && !LEGACY_RE.test(name)) return false;
  const old = await stat(file).then(
    (st) => now - st.mtimeMs > STALE_TEMP_MS,
    () => false,
  );
  return old || (m !== null && !isAlive(Number(m[2]), undefined));
}

async function deadGuard(file: string): Promise<boolean> {
  const seen = await readSeen(file).catch(() => undefined);
  return seen !== undefined && verdict(seen) === "dead";
}
