// An append-only JSON-lines log that a busy writer cannot grow without bound: past maxBytes the
// file becomes <file>.1 (the previous .1 is dropped) and a new one starts. Writes are asynchronous
// appends in order (a WriteStream), never fsync'd: these are records of traffic, not of state.
// With flushMs, a line is appended at once unless another was appended less than flushMs ago; then
// it is gathered, and the gathered lines are appended together when that window ends (or once
// 64 KiB wait): a busy writer makes one write, and waits for one completion, per window instead of
// one per line; a process killed outright loses at most one window's lines (close() writes them).
import { createWriteStream, statSync, type WriteStream } from "node:fs";
import { rename } from "node:fs/promises";

const GATHER_MAX = 64 << 10; // gathered bytes that are written at once, not at the timer

export class RotatingLog {
  private stream: WriteStream;
  private size: number;
  private rotating: Promise<void> | undefined;
  private gathered: string[] = [];
  private gatheredBytes = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly file: string,
    private readonly maxBytes: number,
    private readonly flushMs = 0,
  ) {
    this.size = sizeOf(file);
    this.stream = this.open();
  }

  write(record: unknown): void {
    const line = `${JSON.stringify(record)}\n`;
    if (this.flushMs <= 0) return this.append(line);
    if (!this.timer) {
      this.append(line); // the first line of a window goes at once
      this.timer = setTimeout(() => this.flush(), this.flushMs).unref();
      return;
    }
    this.gathered.push(line);
    this.gatheredBytes += line.length;
    if (this.gatheredBytes >= GATHER_MAX) this.flush();
  }

  // Append what was gathered, now (and end the window).
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.gathered.length) return;
    const text = this.gathered.join("");
    this.gathered = [];
    this.gatheredBytes = 0;
    this.append(text);
  }

  async close(): Promise<void> {
    this.flush();
    await this.rotating;
    await new Promise<void>((resolve) => this.stream.end(resolve));
  }

  private append(text: string): void {
    this.size += Buffer.byteLength(text);
    this.stream.write(text);
    if (this.size > this.maxBytes && !this.rotating)
      this.rotating = this.rotate().finally(() => (this.rotating = undefined));
  }

  private open(): WriteStream {
    const s = createWriteStream(this.file, { flags: "a", mode: 0o600 });
    s.on("error", () => undefined); // a full disk loses log lines, never the writer
    return s;
  }

  // The old stream is ended (its lines land in the renamed file), the next lines go to a new one.
  private async rotate(): Promise<void> {
    const old = this.stream;
    await rename(this.file, `${this.file}.1`).catch(() => undefined);
    this.stream = this.open();
    this.size = 0;
    await new Promise<void>((resolve) => old.end(resolve));
  }
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}
