// The gateway's server-sent-events splitter: events out of chunks cut anywhere, bytes unchanged.
import { describe, expect, it } from "vitest";
import { SseSplitter, eventData, mayCarryUsage } from "../../src/gateway/sse.js";

const ev = (data: unknown): string => `data: ${JSON.stringify(data)}\n\n`;

describe("SseSplitter", () => {
  it("gives whole events, and says a chunk of whole events is exactly its events", () => {
    const s = new SseSplitter();
    const chunk = ev({ a: 1 }) + ev({ b: 2 });
    expect(s.push(Buffer.from(chunk))).toEqual([ev({ a: 1 }), ev({ b: 2 })]);
    expect(s.exact).toBe(true);
  });

  it("holds an unfinished event for the next chunk, and is not exact while it does", () => {
    const s = new SseSplitter();
    const text = ev({ a: 1 }) + ev({ b: 2 });
    const cut = text.length - 5;
    expect(s.push(Buffer.from(text.slice(0, cut)))).toEqual([ev({ a: 1 })]);
    expect(s.exact).toBe(false);
    expect(s.push(Buffer.from(text.slice(cut)))).toEqual([ev({ b: 2 })]);
    expect(s.exact).toBe(false); // it carried the start of the event in
    expect(s.flush()).toBe("");
  });

  it("keeps a character cut between two chunks whole", () => {
    const s = new SseSplitter();
    const bytes = Buffer.from(ev({ text: "Grüße 🙂 東京" }) + ev({ n: 2 }));
    const cut = bytes.indexOf(0xf0) + 2; // inside the emoji's four bytes
    const out = [...s.push(bytes.subarray(0, cut)), ...s.push(bytes.subarray(cut))];
    expect(out).toEqual([ev({ text: "Grüße 🙂 東京" }), ev({ n: 2 })]);
    expect(Buffer.from(out.join(""))).toEqual(bytes);
  });

  it("splits on CRLF blank lines too, and flushes an event without its terminator", () => {
    const s = new SseSplitter();
    expect(s.push(Buffer.from("event: x\r\ndata: {}\r\n\r\ndata: 1"))).toEqual(["event: x\r\ndata: {}\r\n\r\n"]);
    expect(s.flush()).toBe("data: 1");
  });
});

describe("mayCarryUsage", () => {
  it("is true for the events that carry usage in both APIs and false for a text delta", () => {
    expect(mayCarryUsage(ev({ choices: [], usage: { prompt_tokens: 1 } }))).toBe(true);
    expect(mayCarryUsage(ev({ type: "message_delta", usage: { output_tokens: 4 } }))).toBe(true);
    expect(mayCarryUsage(ev({ choices: [{ delta: { content: 'the "usage" word' } }] }))).toBe(false);
    expect(eventData(ev({ usage: { output_tokens: 4 } }))).toEqual({ usage: { output_tokens: 4 } });
  });
});
