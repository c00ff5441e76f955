// Sparse files in a checkpoint's tar. GNU tar (--format=posix --sparse --sparse-version=1.0)
// stores a file with holes as an entry named …/GNUSparseFile.<pid>/<name> whose pax header gives
// the real name (GNU.sparse.name) and length (GNU.sparse.realsize), and whose data is a map
// (decimal lines: the count, then each data segment's offset and length, padded to 512 bytes)
// followed by the segments' bytes. The holes are not in the archive; the manifest's sha256 is the
// file's whole content, holes read as zeros, as restore checks it.
import { createHash, type Hash } from "node:crypto";
import { setImmediate as yieldNow } from "node:timers/promises";

export interface SparseHeader {
  name: string;
  realSize: number;
}

// The records of a pax extended header ("LEN key=value\n", LEN counting bytes), read by their
// lengths so that a value holding a newline (a file name) cannot pass for another record. A
// malformed record ends the reading: what came before it is kept.
export function paxRecords(text: string): Map<string, string> {
  const buf = Buffer.from(text, "utf8");
  const out = new Map<string, string>();
  let at = 0;
  while (at < buf.length) {
    const space = buf.indexOf(0x20, at);
    const len = space > at ? Number(buf.subarray(at, space).toString("latin1")) : Number.NaN;
    if (!Number.isSafeInteger(len) || len <= space - at || at + len > buf.length || buf[at + len - 1] !== 0x0a) break;
    const rec = buf.subarray(space + 1, at + len - 1).toString("utf8");
    const eq = rec.indexOf("=");
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    at += len;
  }
  return out;
}

// The sparse header a pax extended header gives the entry after it, if it is one of format 1.0.
export function sparseHeader(pax: Map<string, string>): SparseHeader | undefined {
  if (pax.get("GNU.sparse.major") !== "1" || pax.get("GNU.sparse.minor") !== "0") return undefined;
  const name = pax.get("GNU.sparse.name");
  const realSize = Number(pax.get("GNU.sparse.realsize"));
  if (!name || !/^\d+$/.test(pax.get("GNU.sparse.realsize") ?? "") || !Number.isSafeInteger(realSize)) return undefined;
  return { name, realSize };
}

const ZEROS = Buffer.alloc(1024 * 1024);
const MAX_MAP = 64 * 1024 * 1024; // a longer map is not one tar writes
const ZERO_CHUNKS_PER_YIELD = 32; // ~15-60 ms of hashing between turns of the event loop

// Hash n zero bytes, letting other work run between chunks (a hole of gigabytes takes seconds).
async function hashZeros(h: Hash, n: number): Promise<void> {
  for (let i = 1; n > 0; i++) {
    const k = Math.min(n, ZEROS.length);
    h.update(k === ZEROS.length ? ZEROS : ZEROS.subarray(0, k));
    n -= k;
    if (i % ZERO_CHUNKS_PER_YIELD === 0) await yieldNow();
  }
}

// The sha256 of a sparse file's whole content from its entry's data (map, then segments), fed in
// order by write. The last write (the entry's stored size reached) hashes the trailing hole too.
export class SparseHash {
  private readonly h = createHash("sha256");
  private mapText = "";
  private seen = 0; // bytes of the entry's data received
  private dataStart = -1; // where the segments begin, once the map is read
  private segments: [number, number][] = [];
  private seg = 0;
  private segDone = 0; // bytes of the current segment hashed
  private pos = 0; // bytes of the file hashed (zeros included)

  constructor(
    private readonly realSize: number,
    private readonly storedSize: number,
  ) {}

  async write(chunk: Buffer): Promise<void> {
    let c = chunk;
    if (this.dataStart < 0) c = this.readMap(c);
    if (this.dataStart >= 0 && this.seen < this.dataStart) {
      const skip = Math.min(c.length, this.dataStart - this.seen);
      this.seen += skip;
      c = c.subarray(skip);
    }
    while (c.length > 0) {
      const s = this.segments[this.seg];
      if (!s) throw new Error("sparse file: more data than its map declares");
      const [off, len] = s;
      if (this.pos < off) {
        await hashZeros(this.h, off - this.pos);
        this.pos = off;
      }
      const k = Math.min(len - this.segDone, c.length);
      this.h.update(c.subarray(0, k));
      this.segDone += k;
      this.pos += k;
      this.seen += k;
      c = c.subarray(k);
      if (this.segDone === len) {
        this.seg++;
        this.segDone = 0;
      }
    }
    if (this.seen === this.storedSize) await this.tail();
  }

  // The hex digest, once every byte of the entry was written.
  digest(): string {
    if (this.seen !== this.storedSize || this.pos !== this.realSize)
      throw new Error("sparse file: its data ended before its map did");
    return this.h.digest("hex");
  }

  // Hash the segments of no length and the holes after the last byte.
  private async tail(): Promise<void> {
    for (; this.seg < this.segments.length; this.seg++) {
      const [off, len] = this.segments[this.seg] as [number, number];
      if (len !== 0 || this.segDone !== 0) throw new Error("sparse file: its data ended before its map did");
      if (this.pos < off) await hashZeros(this.h, off - this.pos);
      this.pos = Math.max(this.pos, off);
    }
    if (this.pos < this.realSize) await hashZeros(this.h, this.realSize - this.pos);
    this.pos = this.realSize;
  }

  // Take the map from the start of the data; returns what of the chunk is past the map's blocks.
  private readMap(c: Buffer): Buffer {
    const before = this.seen;
    this.seen += c.length;
    if (this.mapText.length >= MAX_MAP) throw new Error("sparse file: its map is too long");
    this.mapText += c.subarray(0, MAX_MAP - this.mapText.length).toString("latin1");
    const lines = this.mapText.split("\n");
    if (lines.length < 2) return c.subarray(c.length);
    const count = /^\d+$/.test(lines[0] as string) ? Number(lines[0]) : Number.NaN;
    if (!Number.isSafeInteger(count)) throw new Error("sparse file: its map does not start with a count");
    if (lines.length < 2 * count + 2) return c.subarray(c.length);
    let end = 0;
    for (let i = 0; i < count; i++) {
      const [off, len] = [lines[2 * i + 1], lines[2 * i + 2]].map((l) =>
        /^\d+$/.test(l as string) ? Number(l) : Number.NaN,
      ) as [number, number];
      if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < end || off + len > this.realSize)
        throw new Error("sparse file: its map is not in order or passes its size");
      this.segments.push([off, len]);
      end = off + len;
    }
    const mapLen = lines.slice(0, 2 * count + 1).join("\n").length + 1;
    this.dataStart = Math.ceil(mapLen / 512) * 512;
    this.mapText = "";
    this.seen = Math.min(this.dataStart, before + c.length);
    return c.subarray(this.seen - before);
  }
}
