// A provider's successful answer to the member: a stream relayed chunk by chunk as it arrives
// (server-sent events, parsed on the side for usage), any other body whole. The gateway's headers
// say which model served it and how many attempts it took.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { ApiShape, Usage } from "./apis.js";
import { SseSplitter, eventData, mayCarryUsage } from "./sse.js";

export interface Served {
  res: IncomingMessage;
  stripUsageChunk: boolean;
  at: { model: string; provider: string };
}

export interface Relayed {
  usage?: Usage;
  firstByteMs?: number;
  complete: boolean; // the provider's body ended normally and the member took it all
}

const HOP = new Set(["connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "upgrade"]);
// The provider's headers about the operator's account and session, never the member's business.
const OPERATORS = new Set(["openai-organization", "openai-project", "anthropic-organization-id", "set-cookie"]);

export function relaySuccess(
  res: ServerResponse,
  api: ApiShape,
  s: Served,
  meta: { attempts: number; fallback?: string },
): Promise<Relayed> {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(s.res.headers))
    if (v !== undefined && !HOP.has(k) && !OPERATORS.has(k)) headers[k] = v;
  headers["x-lazarus-model"] = s.at.model;
  headers["x-lazarus-provider"] = s.at.provider;
  headers["x-lazarus-attempts"] = String(meta.attempts);
  if (meta.fallback) headers["x-lazarus-fallback"] = meta.fallback.replace(/[^\x20-\x7e]/g, "?");
  const sse = /text\/event-stream/i.test(String(s.res.headers["content-type"] ?? ""));
  return sse ? relayStream(res, api, s, headers) : relayWhole(res, api, s, headers);
}

async function relayWhole(
  res: ServerResponse,
  api: ApiShape,
  s: Served,
  headers: Record<string, string | string[]>,
): Promise<Relayed> {
  const parts: Buffer[] = [];
  try {
    for await (const chunk of s.res) parts.push(chunk as Buffer);
  } catch {
    res.destroy();
    return { complete: false };
  }
  const body = Buffer.concat(parts);
  let usage: Usage | undefined;
  try {
    usage = api.usageOf(JSON.parse(body.toString("utf8")));
  } catch {
    usage = undefined;
  }
  res.writeHead(s.res.statusCode ?? 200, { ...headers, "content-length": body.length });
  res.end(body);
  return { ...(usage ? { usage } : {}), complete: true };
}

function relayStream(
  res: ServerResponse,
  api: ApiShape,
  s: Served,
  headers: Record<string, string | string[]>,
): Promise<Relayed> {
  const started = performance.now();
  let firstByteMs: number | undefined;
  const usage = new StreamUsage(api, s.stripUsageChunk);
  res.writeHead(s.res.statusCode ?? 200, headers);
  res.flushHeaders();
  const body = new BodyWriter(res, () => s.res.resume());
  return new Promise<Relayed>((resolve) => {
    const done = (complete: boolean): void => {
      body.release();
      const u = usage.counter.usage();
      resolve({ ...(u ? { usage: u } : {}), ...(firstByteMs !== undefined ? { firstByteMs } : {}), complete });
    };
    s.res.on("data", (chunk: Buffer) => {
      firstByteMs ??= performance.now() - started;
      const out = usage.relayed(chunk);
      if (out.length > 0 && !body.write(out)) s.res.pause();
    });
    s.res.on("end", () => {
      const tail = usage.tail();
      if (tail.length > 0) body.write(tail);
      res.end();
      done(true);
    });
    s.res.on("error", () => {
      res.destroy();
      done(false);
    });
    res.on("close", () => {
      if (!res.writableFinished) {
        s.res.destroy();
        done(false);
      }
    });
  });
}

const CRLF = Buffer.from("\r\n");

// The member's streamed body. Each piece goes out as one HTTP/1.1 chunk framed here and written
// straight to the connection: one buffer and one write, where node's response makes four writes
// of it (size, CRLF, data, CRLF) through the response and the socket, corked until the next tick.
// The response still writes its head and, at its end, the last chunk. When the response is not
// the connection's own yet (a pipelined request waiting its turn) or not chunked (an HTTP/1.0
// member), pieces go through the response as before.
class BodyWriter {
  private readonly socket: Socket | undefined;
  private readonly drained: () => void;

  constructor(
    private readonly res: ServerResponse,
    onDrain: () => void,
  ) {
    const socket = res.socket as (Socket & { _httpMessage?: unknown }) | null;
    this.socket = res.chunkedEncoding && socket?._httpMessage === res && socket.writable ? socket : undefined;
    this.drained = onDrain;
    (this.socket ?? res).on("drain", onDrain);
  }

  // false: the member is behind, wait for the drain
  write(b: Buffer): boolean {
    if (!this.socket) return this.res.write(b);
    const size = b.length.toString(16);
    const framed = Buffer.allocUnsafe(size.length + b.length + 4);
    framed.write(size, 0, "latin1");
    CRLF.copy(framed, size.length);
    b.copy(framed, size.length + 2);
    CRLF.copy(framed, size.length + 2 + b.length);
    return this.socket.write(framed);
  }

  // The connection outlives the response (keep-alive): forget its drain.
  release(): void {
    (this.socket ?? this.res).off("drain", this.drained);
  }
}

// A stream's usage, counted on the side: only events that can carry it are parsed, and what the
// member gets of each chunk is its bytes unchanged, unless the gateway asked for a usage chunk the
// member did not (stripUsageChunk), which is dropped (and then an unfinished event is held back
// until it is whole).
class StreamUsage {
  readonly counter: ReturnType<ApiShape["streamUsage"]>;
  private readonly split = new SseSplitter();

  constructor(
    private readonly api: ApiShape,
    private readonly strip: boolean,
  ) {
    this.counter = api.streamUsage();
  }

  // What to send the member of this chunk.
  relayed(chunk: Buffer): Buffer {
    if (!this.split.carrying && !mayCarryUsage(chunk)) {
      // the common case: no event in it can carry usage, so none is parsed or dropped
      const whole = this.split.skip(chunk);
      return this.strip && whole < chunk.length ? chunk.subarray(0, whole) : chunk;
    }
    const events = this.split.push(chunk);
    let dropped = false;
    const kept: Buffer[] = [];
    for (const e of events) {
      if (mayCarryUsage(e)) {
        const data = eventData(e);
        this.counter.see(data);
        if (this.strip && this.api.isUsageChunk(data)) {
          dropped = true;
          continue;
        }
      }
      kept.push(e);
    }
    if (!this.strip || (!dropped && this.split.exact)) return chunk;
    return kept.length === 1 ? (kept[0] as Buffer) : Buffer.concat(kept);
  }

  // What is left to send when the stream ends (only when stripping: otherwise it was sent as it came).
  tail(): Buffer {
    const t = this.split.flush();
    return this.strip ? t : Buffer.alloc(0);
  }
}
