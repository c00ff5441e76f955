// An append-only JSON-lines log that a busy writer cannot grow without bound: past maxBytes the
// file becomes <file>.1 (the previous .1 is dropped) and a new one starts. Writes are asynchronous
// appends in order (a WriteStream), never fsync'd: these are records of traffic, not of state.
import { createWriteStream, statSync, type WriteStream } from "node:fs";
import { rename } from "node:fs/promises";

export class RotatingLog {
  private stream: WriteStream;
  private size: number;
  private rotating: Promise<void> | undefined;

  constructor(
    readonly file: string,
    private readonly maxBytes: number,
  ) {
    this.size = sizeOf(file);
    this.stream = this.open();
  }

  write(record: unknown): void {
    const line = `${JSON.stringify(record)}\n`;
    this.size += Buffer.byteLength(line);
    this.stream.write(line);
    if (this.size > this.maxBytes && !this.rotating)
      this.rotating = this.rotate().finally(() => (this.rotating = undefined));
  }

  async close(): Promise<void> {
    await this.rotating;
    await new Promise<void>((resolve) => this.stream.end(resolve));
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
