// Before Lazarus writes into a live cell: .lazarus/ and the directories it is about to write in
// are real directories from the cell dir down, and the files it appends to are regular files.
// What a member planted in the way is moved aside and recorded in decisions.jsonl.
import path from "node:path";
import type { CellPaths } from "../cells/layout.js";
import { ensureRealDir, ensureRegularOrAbsent, type Planted } from "../util/real-dirs.js";
import { decide, type ApplyEnv } from "./context.js";

// One decision per thing moved aside, with paths relative to the cell dir.
export async function recordPlanted(cp: CellPaths, env: Pick<ApplyEnv, "now">, planted: Planted[]): Promise<void> {
  for (const p of planted) {
    const rel = path.relative(cp.dir, p.path);
    await decide(cp, env, {
      decision: "planted-moved-aside",
      path: rel,
      movedTo: path.relative(cp.dir, p.movedTo),
      kind: p.kind,
      reason: `${rel} was a ${p.kind} where Lazarus writes; moved aside, never followed`,
    });
  }
}

// Guard .lazarus/ and one directory created with mode (e.g. 0700 for invitations).
export async function guardDir(cp: CellPaths, env: Pick<ApplyEnv, "now">, dir: string, mode: number): Promise<void> {
  await guardCell(cp, env);
  await recordPlanted(cp, env, await ensureRealDir(cp.dir, dir, mode));
}

// Guard .lazarus/ and its appended logs, then dirs (made real directories) and files (regular or absent).
export async function guardCell(
  cp: CellPaths,
  env: Pick<ApplyEnv, "now">,
  dirs: string[] = [],
  files: string[] = [],
): Promise<Planted[]> {
  const planted = await ensureRealDir(cp.dir, cp.meta);
  for (const f of [cp.decisions, cp.spawnLog]) planted.push(...(await ensureRegularOrAbsent(f)));
  for (const d of dirs) planted.push(...(await ensureRealDir(cp.dir, d)));
  for (const f of files) planted.push(...(await ensureRegularOrAbsent(f)));
  await recordPlanted(cp, env, planted);
  return planted;
}
