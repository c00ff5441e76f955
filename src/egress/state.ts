// Where the egress proxy's inputs and outputs live: <state>/egress/ (Lazarus's own, 0700; no
// member sees it) holds one file per cell with an egress list, the bounds in force, the proxy's
// pid record, its log and its events. Each member's socket is in a directory of its own under
// /run/lazarus/egress/ (0700), which is the only part of it that member's view shows.
import { createHash } from "node:crypto";
import { mkdir, readdir, rm } from "node:fs/promises";
import path from "node:path";
import type { EgressEntry } from "./allow.js";
import type { EgressSettings } from "./settings.js";
import { writeFileAtomic } from "../util/fsx.js";
import { CAPS, readUntrustedJson } from "../util/safe-fs.js";

export const SOCKET_ROOT = "/run/lazarus/egress";
export const SOCKET_NAME = "proxy.sock";
export const MEMBER_SOCKET_DIR = "/run/lazarus/egress"; // where a member sees its socket's directory
export const MEMBER_PORT = 3128; // the proxy's address inside a member's own network namespace

export interface EgressCellFile {
  formatVersion: 1;
  cell: string;
  uid: string; // the cell incarnation
  entries: EgressEntry[]; // the cell's list, automatic entries included
  members: { identity: string; home: string; socketDir: string }[];
}

export interface ProxyRecord {
  pid: number;
  startTime: number;
}

export const egressDir = (stateRoot: string): string => path.join(path.resolve(stateRoot), "egress");
export const cellsDir = (stateRoot: string): string => path.join(egressDir(stateRoot), "cells");
export const eventsFile = (stateRoot: string): string => path.join(egressDir(stateRoot), "events.jsonl");
export const proxyRecordFile = (stateRoot: string): string => path.join(egressDir(stateRoot), "proxy.json");
export const settingsFile = (stateRoot: string): string => path.join(egressDir(stateRoot), "settings.json");

// A member's socket dir: short (a unix socket path has at most 107 bytes) and distinct per state
// dir, cell incarnation and member.
export function memberSocketDir(stateRoot: string, cellUid: string, home: string): string {
  const digest = createHash("sha256")
    .update(`${path.resolve(stateRoot)}\0${cellUid}\0${home}`)
    .digest("hex")
    .slice(0, 20);
  return path.join(SOCKET_ROOT, digest);
}

async function ensureEgressDirs(stateRoot: string): Promise<void> {
  await mkdir(cellsDir(stateRoot), { recursive: true, mode: 0o700 });
  await mkdir(SOCKET_ROOT, { recursive: true, mode: 0o700 });
}

// Record (or replace) a cell's list and members; the proxy picks it up on its next reload.
export async function writeCellFile(stateRoot: string, file: EgressCellFile): Promise<void> {
  await ensureEgressDirs(stateRoot);
  await writeFileAtomic(
    path.join(cellsDir(stateRoot), `${file.cell}.json`),
    `${JSON.stringify(file, null, 2)}\n`,
    0o600,
  );
}

export async function removeCellFile(stateRoot: string, cell: string): Promise<void> {
  await rm(path.join(cellsDir(stateRoot), `${cell}.json`), { force: true });
}

export async function readCellFiles(stateRoot: string): Promise<EgressCellFile[]> {
  const names = await readdir(cellsDir(stateRoot)).catch(() => [] as string[]);
  const files = await Promise.all(
    names
      .filter((n) => n.endsWith(".json"))
      .map((n) =>
        readUntrustedJson<EgressCellFile>(path.join(cellsDir(stateRoot), n), CAPS.record).catch(() => undefined),
      ),
  );
  return files.filter((f): f is EgressCellFile => f?.formatVersion === 1);
}

export async function writeSettingsFile(stateRoot: string, s: EgressSettings): Promise<void> {
  await ensureEgressDirs(stateRoot);
  await writeFileAtomic(settingsFile(stateRoot), `${JSON.stringify(s)}\n`, 0o600);
}
