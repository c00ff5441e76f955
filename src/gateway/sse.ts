// Server-sent events as they stream: complete events (each with its blank-line terminator, bytes
// unchanged) out of chunks cut anywhere (inside an event, or inside a multi-byte character), and
// the JSON in an event's data lines.
import { StringDecoder } from "node:string_decoder";

const EVENT_END = /\r?\n\r?\n/g;

export class SseSplitter {
  private rest = "";
  private readonly decoder = new StringDecoder("utf8");
  // whether the last push's events are exactly its chunk's bytes: nothing carried in or left over
  exact = true;

  // The complete events in what has arrived so far; an unfinished tail (or character) waits for
  // the next chunk.
  push(chunk: Buffer): string[] {
    const decoded = this.decoder.write(chunk);
    const carried = this.rest.length > 0;
    const text = carried ? this.rest + decoded : decoded;
    const out: string[] = [];
    let from = 0;
    EVENT_END.lastIndex = 0;
    for (let m = EVENT_END.exec(text); m; m = EVENT_END.exec(text)) {
      out.push(text.slice(from, EVENT_END.lastIndex));
      from = EVENT_END.lastIndex;
    }
    this.rest = from === 0 ? text : text.slice(from);
    this.exact = !carried && this.rest.length === 0 && Buffer.byteLength(decoded) === chunk.length;
    return out;
  }

  // What is left when the stream ends (an event without its terminator), if anything.
  flush(): string {
    const r = this.rest + this.decoder.end();
    this.rest = "";
    return r;
  }
}

// Whether an event can hold a usage report: both APIs put it under a "usage" key (OpenAI's last
// chunk, Anthropic's message_start and message_delta), so an event without that text is relayed
// without being parsed. (A key spelled with \u escapes would be missed; no provider writes one.)
export const mayCarryUsage = (event: string): boolean => event.includes('"usage"');

// The parsed JSON of an event's data lines, or undefined ("[DONE]", comments, not JSON).
export function eventData(event: string): unknown {
  const data = event
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
