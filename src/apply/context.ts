// What every apply operation shares: the environment it runs in and the record helpers.
import { randomBytes } from "node:crypto";
import { lstat } from "node:fs/promises";
import type { Backend } from "../backends/backend.js";
import type { Backends } from "../backends/registry.js";
import type { HostSettings } from "../host/settings.js";
import type { StateLock } from "../lock/state-lock.js";
import path from "node:path";
import { cellPaths, type CellPaths, type StatePaths } from "../cells/layout.js";
import type { CellRecord } from "../cells/record.js";
import { appendLine, writeFileAtomic } from "../util/fsx.js";
import { CAPS, readUntrustedJson } from "../util/safe-fs.js";
import { LazarusError, isErrno } from "../util/errors.js";

export interface ApplyEnv {
  paths: StatePaths;
  configDir: string;
  backends: Backends;
  hostEnv: NodeJS.ProcessEnv;
  host?: HostSettings; // the operator's settings (secrets root, ...); default: from hostEnv
  now: number;
  stopTimeoutMs: number;
  revision?: string; // the config commit being applied (GitOps), recorded with every action
  stateLock?: StateLock; // held around what all cells share (the archive), when other processes may act
}

// The backend a cell's members run in.
export function backendOf(env: Pick<ApplyEnv, "backends">, rec: Pick<CellRecord, "backend">): Backend {
  return env.backends.get(rec.backend);
}

// What an applied action leaves for the ledger (never a secret).
export type Details = Record<string, unknown>;

import { iso } from "../util/time.js";

export { iso };
export const newId = (): string => randomBytes(8).toString("hex");

export async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch (err) {
    if (isErrno(err, "ENOENT")) return false;
    throw err;
  }
}

// The paths of a live cell (under cells/).
export function liveCell(env: Pick<ApplyEnv, "paths">, name: string): CellPaths {
  return cellPaths(path.join(env.paths.cells, name));
}

export async function loadRecord(cp: CellPaths): Promise<CellRecord> {
  const rec = await readUntrustedJson<CellRecord>(cp.record, CAPS.record, cp.dir);
  if (!rec) throw new LazarusError("RECORD_MISSING", `${cp.record} is missing`);
  // The directory's name is the cell's: a record edited by a member (process backend) cannot make
  // Lazarus act on, or prove processes of, another cell.
  rec.name = path.basename(cp.dir);
  return rec;
}

export async function saveRecord(
  cp: CellPaths,
  rec: CellRecord,
  env: Pick<ApplyEnv, "now"> & { revision?: string },
): Promise<void> {
  await writeFileAtomic(cp.record, recordText(rec, env));
}

// The record as saved: stamped with this run's time and revision, pretty-printed.
export function recordText(rec: CellRecord, env: Pick<ApplyEnv, "now"> & { revision?: string }): string {
  rec.updatedAt = iso(env.now);
  if (env.revision) rec.lastAppliedRevision = env.revision;
  return `${JSON.stringify(rec, null, 2)}\n`;
}

// One line in the cell's decisions.jsonl.
export async function decide(cp: CellPaths, env: Pick<ApplyEnv, "now">, entry: Record<string, unknown>): Promise<void> {
  await appendLine(cp.decisions, JSON.stringify({ time: iso(env.now), by: "lazarus", ...entry }));
}
