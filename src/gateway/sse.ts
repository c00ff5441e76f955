// Server-sent events as they stream: complete events (each with its blank-line terminator, bytes
// unchanged) out of chunks cut anywhere (inside an event, or inside a multi-byte character), and
// the JSON in an event's data lines. The split is on bytes: a blank line is "\n" or "\r\n" twice,
// bytes that never occur inside a multi-byte UTF-8 character, so an event's bytes are whole
// characters however the chunks were cut, and nothing is decoded until an event is parsed.

const NL = 0x0a;
const CR = 0x0d;

// Just past the end of the first event ending at or after from in buf (the end of its "\n\n",
// "\r\n\n", "\n\r\n" or "\r\n\r\n"), or -1.
function nextEnd(buf: Buffer, from: number): number {
  for (let i = buf.indexOf(NL, from); i >= 0; i = buf.indexOf(NL, i + 1)) {
    if (buf[i + 1] === NL) return i + 2;
    if (buf[i + 1] === CR && buf[i + 2] === NL) return i + 3;
  }
  return -1;
}

export class SseSplitter {
  private rest: Buffer | undefined; // the start of an unfinished event
  // whether the last push's events are exactly its chunk's bytes: nothing carried in or left over
  exact = true;

  // Whether the start of an unfinished event is held from an earlier chunk.
  get carrying(): boolean {
    return this.rest !== undefined;
  }

  // The complete events in what has arrived so far (views of the chunks' bytes); an unfinished
  // tail waits for the next chunk.
  push(chunk: Buffer): Buffer[] {
    const carried = this.rest !== undefined;
    const buf = this.rest !== undefined ? Buffer.concat([this.rest, chunk]) : chunk;
    const out: Buffer[] = [];
    let from = 0;
    for (let end = nextEnd(buf, 0); end > 0; end = nextEnd(buf, end)) {
      out.push(buf.subarray(from, end));
      from = end;
    }
    this.keep(buf, from);
    this.exact = !carried && this.rest === undefined;
    return out;
  }

  // As push, when nothing carried in (carrying is false) and no event is wanted: how many of the
  // chunk's first bytes are complete events (the rest is held for the next chunk).
  skip(chunk: Buffer): number {
    let from = 0;
    for (let end = nextEnd(chunk, 0); end > 0; end = nextEnd(chunk, end)) from = end;
    this.keep(chunk, from);
    this.exact = this.rest === undefined;
    return from;
  }

  // What is left when the stream ends (an event without its terminator), if anything.
  flush(): Buffer {
    const r = this.rest ?? Buffer.alloc(0);
    this.rest = undefined;
    return r;
  }

  private keep(buf: Buffer, from: number): void {
    this.rest = from < buf.length ? buf.subarray(from) : undefined;
  }
}

const USAGE = Buffer.from('"usage"');

// Whether an event can hold a usage report: both APIs put it under a "usage" key (OpenAI's last
// chunk, Anthropic's message_start and message_delta), so an event without that text is relayed
// without being parsed. (A key spelled with \u escapes would be missed; no provider writes one.)
export const mayCarryUsage = (event: Buffer): boolean => event.indexOf(USAGE) >= 0;

// The parsed JSON of an event's data lines, or undefined ("[DONE]", comments, not JSON).
export function eventData(event: Buffer | string): unknown {
  const data = event
    .toString()
    .split(/\r?\n/)
    .filter((l) => l.startsWith("data:"))
    .map((l) => l.slice(5).replace(/^ /, ""))
    .join("\n");
  if (!data || data === "[DONE]") return undefined;
  try {
    return JSON.parse(data);
  } catch {
    return undefined;
  }
}
