// Server-sent events as they stream: complete events (each with its blank-line terminator, bytes
// unchanged) out of chunks cut anywhere, and the JSON in an event's data lines.

export class SseSplitter {
  private rest = "";

  // The complete events in what has arrived so far; an unfinished tail waits for the next chunk.
  push(chunk: string): string[] {
    const text = this.rest + chunk;
    const out: string[] = [];
    let from = 0;
    for (;;) {
      const m = /\r?\n\r?\n/.exec(text.slice(from));
      if (!m) break;
      const end = from + m.index + m[0].length;
      out.push(text.slice(from, end));
      from = end;
    }
    this.rest = text.slice(from);
    return out;
  }

  // What is left when the stream ends (an event without its terminator), if anything.
  flush(): string {
    const r = this.rest;
    this.rest = "";
    return r;
  }
}

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
