// Where the egress proxy's inputs and outputs live: <state>/egress/ (Lazarus's own, 0700; no
// member sees it) holds one file per cell with an egress list, the bounds in force, the proxy's
// pid record, its log, its events and its doors (doors.json: the members' namespaces it listens in,
// bridge/doors.ts). Nothing of it is in a member's view: the proxy listens on 127.0.0.1:3128 inside
// each member's own network namespace (the namespace file, bridge/netns.ts).
import { mkdir, readdir, rm } from "node:fs/promises";
import path from "node:path";
import type { EgressEntry } from "./allow.js";
import type { EgressSettings } from "./settings.js";
import { writeFileAtomic } from "../util/fsx.js";
import { CAPS, readUntrustedJson } from "../util/safe-fs.js";

export const MEMBER_PORT = 3128; // the proxy's address inside a member's own network namespace

export interface EgressCellFile {
  formatVersion: 1;
  cell: string;
  uid: string; // the cell incarnation
  entries: EgressEntry[]; // the cell's list, automatic entries included
  members: { identity: string; home: string; netns: string }[]; // netns: its namespace file
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
export const doorsFile = (stateRoot: string): string => path.join(egressDir(stateRoot), "doors.json");

async function ensureEgressDirs(stateRoot: string): Promise<void> {
  await mkdir(cellsDir(stateRoot), { recursive: true, mode: 0o700 });
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
