// The gateway's server-sent-events splitter: events out of chunks cut anywhere, bytes unchanged.
import { describe, expect, it } from "vitest";
import { SseSplitter, eventData, mayCarryUsage } from "../../src/gateway/sse.js";

const ev = (data: unknown): string => `data: ${JSON.stringify(data)}\n\n`;
const texts = (events: Buffer[]): string[] => events.map((e) => e.toString("utf8"));

describe("SseSplitter", () => {
  it("gives whole events, and says a chunk of whole events is exactly its events", () => {
    const s = new SseSplitter();
    const chunk = ev({ a: 1 }) + ev({ b: 2 });
    expect(texts(s.push(Buffer.from(chunk)))).toEqual([ev({ a: 1 }), ev({ b: 2 })]);
    expect(s.exact).toBe(true);
  });

  it("holds an unfinished event for the next chunk, and is not exact while it does", () => {
    const s = new SseSplitter();
    const text = ev({ a: 1 }) + ev({ b: 2 });
    const cut = text.length - 5;
    expect(texts(s.push(Buffer.from(text.slice(0, cut))))).toEqual([ev({ a: 1 })]);
    expect(s.exact).toBe(false);
    expect(texts(s.push(Buffer.from(text.slice(cut))))).toEqual([ev({ b: 2 })]);
    expect(s.exact).toBe(false); // it carried the start of the event in
    expect(s.flush().length).toBe(0);
  });

  it("keeps a character cut between two chunks whole", () => {
    const s = new SseSplitter();
    const bytes = Buffer.from(ev({ text: "Grüße 🙂 東京" }) + ev({ n: 2 }));
    const cut = bytes.indexOf(0xf0) + 2; // inside the emoji's four bytes
    const out = [...s.push(bytes.subarray(0, cut)), ...s.push(bytes.subarray(cut))];
    expect(texts(out)).toEqual([ev({ text: "Grüße 🙂 東京" }), ev({ n: 2 })]);
    expect(Buffer.concat(out)).toEqual(bytes);
  });

  it("splits on CRLF blank lines too, and flushes an event without its terminator", () => {
    const s = new SseSplitter();
    expect(texts(s.push(Buffer.from("event: x\r\ndata: {}\r\n\r\ndata: 1")))).toEqual(["event: x\r\ndata: {}\r\n\r\n"]);
    expect(s.flush().toString()).toBe("data: 1");
  });

  it("ends an event at each of the four blank lines, and not at a lone newline or at the chunk's end", () => {
    const s = new SseSplitter();
    const text = "data: 1\n\ndata: 2\r\n\ndata: 3\n\r\ndata: 4\r\n\r\ndata: 5\ndata: 6\n";
    expect(texts(s.push(Buffer.from(text)))).toEqual([
      "data: 1\n\n",
      "data: 2\r\n\n",
      "data: 3\n\r\n",
      "data: 4\r\n\r\n",
    ]);
    expect(s.carrying).toBe(true);
    expect(texts(s.push(Buffer.from("\n")))).toEqual(["data: 5\ndata: 6\n\n"]);
    expect(s.carrying).toBe(false);
  });

  it("skips whole events without making them, holding an unfinished one", () => {
    const s = new SseSplitter();
    const chunk = Buffer.from(`${ev({ a: 1 })}${ev({ b: 2 })}data: {"c"`);
    expect(s.skip(chunk)).toBe(Buffer.byteLength(ev({ a: 1 }) + ev({ b: 2 })));
    expect(s.exact).toBe(false);
    expect(texts(s.push(Buffer.from(":3}\n\n")))).toEqual(['data: {"c":3}\n\n']);
  });
});

describe("mayCarryUsage", () => {
  it("is true for the events that carry usage in both APIs and false for a text delta", () => {
    const may = (data: unknown): boolean => mayCarryUsage(Buffer.from(ev(data)));
    expect(may({ choices: [], usage: { prompt_tokens: 1 } })).toBe(true);
    expect(may({ type: "message_delta", usage: { output_tokens: 4 } })).toBe(true);
    expect(may({ choices: [{ delta: { content: 'the "usage" word' } }] })).toBe(false);
    expect(eventData(ev({ usage: { output_tokens: 4 } }))).toEqual({ usage: { output_tokens: 4 } });
  });
});
