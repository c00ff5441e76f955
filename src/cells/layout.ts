// Paths of the state dir and of one cell directory (spec §6). Pure: no I/O.
import os from "node:os";
import path from "node:path";

export interface StatePaths {
  cells: string;
  graveyard: string;
  archive: string;
  ledger: string; // the append-only, hash-chained ledger (spec I6)
  ledgerHead: string; // seq, hash and time of the ledger's last entry
  lock: string; // one reconciler at a time
}

// With a state dir everything lives under it; without one, the spec's defaults.
export function statePaths(stateDir: string | undefined): StatePaths {
  if (stateDir) {
    const root = path.resolve(stateDir);
    return {
      cells: path.join(root, "cells"),
      graveyard: path.join(root, "graveyard"),
      archive: path.join(root, "archive"),
      ledger: path.join(root, "ledger.jsonl"),
      ledgerHead: path.join(root, "ledger.head.json"),
      lock: path.join(root, "lazarus.lock"),
    };
  }
  const home = path.join(os.homedir(), ".lazarus");
  return {
    cells: "/tmp/lazarus-cells",
    graveyard: "/tmp/lazarus-graveyard",
    archive: path.join(home, "archive"),
    ledger: path.join(home, "ledger.jsonl"),
    ledgerHead: path.join(home, "ledger.head.json"),
    lock: path.join(home, "lazarus.lock"),
  };
}

// A graveyard entry being scrubbed is first renamed to `.scrubbing-<cell>~<id>` beside it, then
// released and deleted: a crash never leaves a half-deleted dir under the cell's own name, and what
// it leaves is found by this name and finished (src/apply/scrub.ts).
export const SCRUBBING_RE = /^\.scrubbing-([a-z0-9]([a-z0-9-]*[a-z0-9])?)~[0-9a-f]+$/;
export const scrubbingName = (cell: string, id: string): string => `.scrubbing-${cell}~${id}`;

export interface CellPaths {
  dir: string;
  meta: string; // .lazarus/
  record: string; // .lazarus/cell.json
  spawnLog: string;
  decisions: string;
  closeLog: string;
  checkpoints: string;
  logs: string; // member stdout/stderr
  secrets: string; // .lazarus/secrets/: holds the manifest (shown read-only to sandboxed members)
  credentials: string; // the CELL_CREDENTIALS manifest (0600; 0400 owned by the cell uid in a sandbox)
  invites: string; // invitation tokens (0600), one file per member
  project: string;
  shared: string;
  scratchpad: string;
  artifacts: string;
  homes: string;
}

export function cellPaths(dir: string): CellPaths {
  const meta = path.join(dir, ".lazarus");
  const shared = path.join(dir, "shared");
  return {
    dir,
    meta,
    record: path.join(meta, "cell.json"),
    spawnLog: path.join(meta, "spawn.log"),
    decisions: path.join(meta, "decisions.jsonl"),
    closeLog: path.join(meta, "close.log"),
    checkpoints: path.join(meta, "checkpoints"),
    logs: path.join(meta, "logs"),
    secrets: path.join(meta, "secrets"),
    credentials: path.join(meta, "secrets", "credentials.json"),
    invites: path.join(meta, "invites"),
    project: path.join(dir, "project"),
    shared,
    scratchpad: path.join(shared, "scratchpad.md"),
    artifacts: path.join(shared, "artifacts"),
    homes: path.join(dir, "home"),
  };
}

export function memberHome(cell: CellPaths, home: string): string {
  return path.join(cell.homes, home);
}

export function memberLog(cell: CellPaths, home: string): string {
  return path.join(cell.logs, `${home}.log`);
}

// Written by the member's wrapper when its command exits: the exit code; its mtime is the exit time.
export function memberExitFile(cell: CellPaths, home: string): string {
  return path.join(cell.logs, `${home}.exit`);
}

// The member's resolved fallback model portfolio (LAZARUS_PORTFOLIO). Where the backend keeps a
// member's files out of its reach (the sandbox), it lives in Lazarus's own
// .lazarus/members/<home>/, shown read-only at ~/.lazarus inside the sandbox. memberFilesInMeta:
// the backend's say (BackendSpec.memberFilesInMeta); the caller asks the registry.
export function portfolioFile(cell: CellPaths, home: string, memberFilesInMeta = false): string {
  if (memberFilesInMeta) return path.join(cell.meta, "members", home, "portfolio.json");
  return path.join(cell.homes, home, ".lazarus", "portfolio.json");
}

// The cell's Python venvs (spec.runtime.python), one per digest of what it holds.
export const venvsDir = (cellDir: string): string => path.join(cellDir, ".lazarus", "venvs");
export const venvDir = (cellDir: string, digest: string): string => path.join(venvsDir(cellDir), digest);

export function inviteFile(cell: CellPaths, home: string): string {
  return path.join(cell.invites, `${home}.token`);
}

export function heartbeatFile(cell: CellPaths, home: string): string {
  return path.join(cell.homes, home, ".heartbeat");
}

// Checkpoint files: <UTC timestamp>.tar.zst (zstd) or .tar.gz (gzip) with
// <UTC timestamp>.manifest.json beside it.
export const CHECKPOINT_RE = /^(\d{8}T\d{6}(?:\d{3})?Z)\.tar\.(?:gz|zst)$/;
export function checkpointStamp(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}Z$/, "Z");
}
export function stampTime(stamp: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})?Z$/.exec(stamp);
  if (!m) return Number.NaN;
  return Date.UTC(
    Number(m[1]),
    Number(m[2]) - 1,
    Number(m[3]),
    Number(m[4]),
    Number(m[5]),
    Number(m[6]),
    Number(m[7] ?? 0),
  );
}

// The records kept in the archive after scrub: never the credentials, never the homes.
export const ARCHIVED_RECORDS = [
  "cell.json",
  "spawn.log",
  "decisions.jsonl",
  "close.log",
  "logs",
  "checkpoints",
] as const;
