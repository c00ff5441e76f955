// The log pump: one small process per member between its output and its log file. It stamps each
// line with the time it arrived and rotates the file by size, so a chatty member cannot fill the
// disk and `lazarus logs` can interleave members and cut by time. Standalone on purpose (node's
// own modules only): it starts once per member spawn.
//
//   node log-pump.js <log file> <max bytes> <keep>
//   stdin:  the read end of the member's stdout+stderr pipe
//   stdout: <log file>, opened by Lazarus for appending without following a link
//
// Each record is "<UTC time, ms> <bytes of one line>\n". A line longer than the record limit is cut
// into several records; a partial line is written once a newline comes, the record limit is
// reached, input ends, or it has waited PARTIAL_MS. Before a record would take the file past
// <max bytes>, <log file> becomes <log file>.1 (.1 → .2 … up to .<keep>, the oldest dropped) and
// a new file is started: the member's logs never take more than max × (keep + 1) bytes. keep 0
// truncates the file instead.
//
// The pump runs in its own session (Lazarus and the member's supervisor may die; it outlives
// both) and ends when every writer of the pipe has closed it. It works by names relative to the
// logs directory it starts in, so a cell dir moved to the graveyard rotates where it now is, and
// one deleted (scrubbed) makes rotation fail over to truncating the open file: it never creates
// a directory and never opens through a link.
import { closeSync, constants, fstatSync, ftruncateSync, openSync, renameSync, writeSync } from "node:fs";
import path from "node:path";

const PARTIAL_MS = 1000;
const STAMP_BYTES = 25; // "2026-11-26T03:34:00.123Z "

const [file, maxArg, keepArg] = process.argv.slice(2);
const maxBytes = Math.max(4096, Number(maxArg) || 10 * 1024 * 1024);
const keep = Math.max(0, Math.min(100, Math.floor(Number(keepArg) || 0)));
// The longest line body of one record: a record always fits in an empty file.
const maxLine = Math.max(256, Math.min(16 * 1024, Math.floor(maxBytes / 2) - STAMP_BYTES - 1));

let name = "log";
let fd = 1;
let size = 0;
try {
  if (!file) throw new Error("no log file");
  process.chdir(path.dirname(file));
  name = path.basename(file);
  size = fstatSync(fd).size;
} catch {
  // still drain the pipe (the member must not block), writing where fd 1 goes
}

// Whatever a signal meant for the member's group or terminal would do, the pump keeps draining
// until input ends; SIGTERM flushes and ends.
process.on("SIGHUP", () => {});
process.on("SIGINT", () => {});

const { O_WRONLY, O_APPEND, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY } = constants;

function rotate(): void {
  if (keep > 0) {
    try {
      for (let i = keep - 1; i >= 1; i--) {
        try {
          renameSync(`${name}.${i}`, `${name}.${i + 1}`);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
        }
      }
      renameSync(name, `${name}.1`);
      const next = openSync(name, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0o640);
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
      fd = next;
      size = 0;
      return;
    } catch {
      // the directory is gone or something sits in the way: fall through to truncating
    }
  }
  try {
    ftruncateSync(fd, 0);
  } catch {
    // not a file we can truncate: keep appending
  }
  size = 0;
}

let out: Buffer[] = [];
let outBytes = 0;

function flush(): void {
  if (outBytes === 0) return;
  const data = out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out, outBytes);
  out = [];
  outBytes = 0;
  let off = 0;
  while (off < data.length) {
    try {
      off += writeSync(fd, data, off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EAGAIN") continue;
      return; // the disk is full or the file unwritable: drop this batch, keep draining
    }
  }
  size += data.length;
}

function record(stamp: string, body: Buffer): void {
  const rec = Buffer.allocUnsafe(STAMP_BYTES + body.length + 1);
  rec.write(stamp, 0, "latin1");
  rec[STAMP_BYTES - 1] = 0x20;
  body.copy(rec, STAMP_BYTES);
  rec[rec.length - 1] = 0x0a;
  if (size + outBytes + rec.length > maxBytes && size + outBytes > 0) {
    flush();
    rotate();
  }
  out.push(rec);
  outBytes += rec.length;
}

let pending: Buffer | undefined; // a line begun, not yet ended
let pendingStamp = "";
let timer: NodeJS.Timeout | undefined;

function emitPending(): void {
  if (timer) clearTimeout(timer);
  timer = undefined;
  if (pending?.length) record(pendingStamp, pending);
  pending = undefined;
}

function take(chunk: Buffer): void {
  const stamp = new Date().toISOString();
  try {
    size = fstatSync(fd).size; // another writer (a member's earlier pump still draining) counts too
  } catch {
    // keep counting our own
  }
  let start = 0;
  while (start < chunk.length) {
    const nl = chunk.indexOf(0x0a, start);
    const end = nl < 0 ? chunk.length : nl;
    let piece = chunk.subarray(start, end);
    if (pending) {
      piece = Buffer.concat([pending, piece]);
      pending = undefined;
      if (timer) clearTimeout(timer);
      timer = undefined;
    } else {
      pendingStamp = stamp;
    }
    while (piece.length > maxLine) {
      record(pendingStamp, piece.subarray(0, maxLine));
      piece = piece.subarray(maxLine);
    }
    if (nl < 0) {
      pending = Buffer.from(piece);
      break;
    }
    record(pendingStamp, piece);
    start = nl + 1;
  }
  flush();
  if (pending && !timer) {
    timer = setTimeout(() => {
      emitPending();
      flush();
    }, PARTIAL_MS);
  }
}

function end(): void {
  emitPending();
  flush();
  process.exit(0);
}

process.on("SIGTERM", end);
process.stdin.on("data", (chunk: Buffer) => take(chunk));
process.stdin.on("end", end);
process.stdin.on("error", end);
