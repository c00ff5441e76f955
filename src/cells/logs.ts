// Reading members' logs as the log pump (src/backends/log-pump.ts) writes them: one record per
// line, "<UTC time> <text>", in <home>.log and its rotated <home>.log.1 … (.1 the newest). Lines
// without a time (written before the pump, or by a member of the process backend straight into
// the file) take the time of the line before them. Files are opened as a member may have planted
// them: never through a link, never blocking on a FIFO.
import { constants } from "node:fs";
import { open, readdir, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { cellPaths, statePaths } from "./layout.js";
import type { CellRecord } from "./record.js";
import { LazarusError } from "../util/errors.js";
import { CAPS, readUntrustedJson } from "../util/safe-fs.js";

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY } = constants;

export interface LogLine {
  time: number; // ms since the epoch (NaN when no line before it had one)
  stamp: string; // the time as written, "" when the line had none
  member: string; // identity
  text: string;
}

export interface LogSource {
  identity: string;
  home: string;
  file: string; // <logs>/<home>.log
}

export interface CellLogs {
  cell: string;
  where: "live" | "closed" | "archived";
  dir: string; // the directory holding the logs
  members: LogSource[];
}

const STAMP_RE = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z) /;

// One file's text as lines with times; prev carries the last time across files.
export function parseLog(text: string, member: string, prev = { time: Number.NaN, stamp: "" }): LogLine[] {
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  const out: LogLine[] = [];
  for (const line of lines) {
    const m = STAMP_RE.exec(line);
    if (m) {
      prev.stamp = m[1] as string;
      prev.time = Date.parse(prev.stamp);
      out.push({ time: prev.time, stamp: prev.stamp, member, text: line.slice(m[0].length) });
    } else {
      out.push({ time: prev.time, stamp: "", member, text: line });
    }
  }
  return out;
}

// Where the cell's logs are: live, in the graveyard (closed), else its newest archived copy.
export async function findCellLogs(stateDir: string | undefined, cell: string): Promise<CellLogs> {
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(cell))
    throw new LazarusError("BAD_ARGUMENT", `"${cell}" is not a cell name (lowercase letters, digits and dashes)`);
  const paths = statePaths(stateDir);
  const candidates: { where: CellLogs["where"]; record: string; logs: string; root: string }[] = [];
  for (const [where, base] of [
    ["live", paths.cells],
    ["closed", paths.graveyard],
  ] as const) {
    const cp = cellPaths(path.join(base, cell));
    candidates.push({ where, record: cp.record, logs: cp.logs, root: cp.dir });
  }
  const days = (await readdir(paths.archive).catch(() => [] as string[]))
    .filter((d) => /^\d{4}-\d{2}-\d{2}$/.test(d))
    .sort()
    .reverse();
  for (const day of days) {
    const dir = path.join(paths.archive, day, cell);
    candidates.push({
      where: "archived",
      record: path.join(dir, "cell.json"),
      logs: path.join(dir, "logs"),
      root: dir,
    });
  }
  for (const c of candidates) {
    let rec: CellRecord | undefined;
    try {
      rec = await readUntrustedJson<CellRecord>(c.record, CAPS.record, c.root);
    } catch {
      rec = undefined; // unreadable record: the log files still say which members there were
    }
    const files = await readdir(c.logs).catch(() => undefined);
    if (!rec && !files) continue;
    const members: LogSource[] = [];
    const seen = new Set<string>();
    for (const m of rec?.members ?? []) {
      if (typeof m.home !== "string" || seen.has(m.home)) continue;
      seen.add(m.home);
      members.push({ identity: m.identity, home: m.home, file: path.join(c.logs, `${m.home}.log`) });
    }
    // Logs of members no longer in the record (removed from the declaration) are shown too.
    for (const f of (files ?? []).sort()) {
      const home = /^(.+)\.log$/.exec(f)?.[1];
      if (!home || seen.has(home)) continue;
      seen.add(home);
      members.push({ identity: home, home, file: path.join(c.logs, f) });
    }
    return { cell, where: c.where, dir: c.logs, members };
  }
  throw new LazarusError(
    "CELL_NOT_FOUND",
    `no cell ${cell} in ${paths.cells}, ${paths.graveyard} or ${paths.archive} (a scrubbed cell's logs are in the archive until it is purged)`,
  );
}

// The member a user named: its identity (agent:allegro) or its home (allegro).
export function pickMember(logs: CellLogs, name: string): LogSource {
  const found = logs.members.find((m) => m.identity === name) ?? logs.members.find((m) => m.home === name);
  if (found) return found;
  const known = logs.members.map((m) => m.identity).join(", ");
  throw new LazarusError(
    "MEMBER_NOT_FOUND",
    `cell ${logs.cell} has no member ${name}${known ? `; its members: ${known}` : " (it has no members)"}`,
  );
}

// Open a log file as a member may have planted it; undefined when it is missing or not a regular file.
export async function openLog(file: string): Promise<FileHandle | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  } catch {
    return undefined;
  }
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close();
    return undefined;
  }
  return fh;
}

// A file's bytes from offset to its end as read now.
export async function readFrom(fh: FileHandle, offset: number): Promise<Buffer> {
  const size = (await fh.stat()).size;
  if (size <= offset) return Buffer.alloc(0);
  const buf = Buffer.allocUnsafe(size - offset);
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, offset + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

export interface MemberRead {
  lines: LogLine[];
  // Where following goes on: the current file's inode and the offset read up to (the end of its
  // last complete line).
  ino?: number;
  offset: number;
  prev: { time: number; stamp: string };
}

// All of a member's rotated files (oldest first) and its current file.
export async function readMember(src: LogSource): Promise<MemberRead> {
  const dir = path.dirname(src.file);
  const base = path.basename(src.file);
  const names = await readdir(dir).catch(() => [] as string[]);
  const rotated = names
    .map((n) => (n.startsWith(`${base}.`) ? Number(n.slice(base.length + 1)) : Number.NaN))
    .filter((n) => Number.isInteger(n) && n > 0)
    .sort((a, b) => b - a);
  const prev = { time: Number.NaN, stamp: "" };
  const lines: LogLine[] = [];
  for (const n of rotated) {
    const fh = await openLog(`${src.file}.${n}`);
    if (!fh) continue;
    try {
      lines.push(...parseLog(completeLines(await readFrom(fh, 0)).text, src.identity, prev));
    } finally {
      await fh.close();
    }
  }
  const fh = await openLog(src.file);
  if (!fh) return { lines, offset: 0, prev };
  try {
    const ino = (await fh.stat()).ino;
    const { text, bytes } = completeLines(await readFrom(fh, 0));
    lines.push(...parseLog(text, src.identity, prev));
    return { lines, ino, offset: bytes, prev };
  } finally {
    await fh.close();
  }
}

// The complete lines of buf (up to its last newline) as text, and how many bytes they are.
export function completeLines(buf: Buffer): { text: string; bytes: number } {
  const end = buf.lastIndexOf(0x0a);
  if (end < 0) return { text: "", bytes: 0 };
  return { text: buf.subarray(0, end + 1).toString("utf8"), bytes: end + 1 };
}

// Lines of several members in time order; a tie keeps the members' order, then each file's order.
export function interleave(perMember: LogLine[][]): LogLine[] {
  const all: { l: LogLine; m: number; i: number }[] = [];
  perMember.forEach((lines, m) => lines.forEach((l, i) => all.push({ l, m, i })));
  const key = (t: number): number => (Number.isNaN(t) ? Number.NEGATIVE_INFINITY : t);
  all.sort((a, b) => key(a.l.time) - key(b.l.time) || a.m - b.m || a.i - b.i);
  return all.map((x) => x.l);
}
