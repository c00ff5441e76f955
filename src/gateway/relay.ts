// A provider's successful answer to the member: a stream relayed chunk by chunk as it arrives
// (server-sent events, parsed on the side for usage), any other body whole. The gateway's headers
// say which model served it and how many attempts it took.
import type { IncomingMessage, ServerResponse } from "node:http";
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
  return new Promise<Relayed>((resolve) => {
    const done = (complete: boolean): void => {
      const u = usage.counter.usage();
      resolve({ ...(u ? { usage: u } : {}), ...(firstByteMs !== undefined ? { firstByteMs } : {}), complete });
    };
    s.res.on("data", (chunk: Buffer) => {
      firstByteMs ??= performance.now() - started;
      const out = usage.relayed(chunk);
      if (out.length > 0 && !res.write(out)) s.res.pause();
    });
    res.on("drain", () => s.res.resume());
    s.res.on("end", () => {
      const tail = usage.tail();
      if (tail) res.write(tail);
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

// A stream's usage, counted on the side: only events that can carry it are parsed, and what the
// member gets of each chunk is its bytes unchanged, unless the gateway asked for a usage chunk the
// member did not (stripUsageChunk), which is dropped.
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
  relayed(chunk: Buffer): Buffer | string {
    const events = this.split.push(chunk);
    let dropped = false;
    const kept: string[] | undefined = this.strip ? [] : undefined;
    for (const e of events) {
      if (mayCarryUsage(e)) {
        const data = eventData(e);
        this.counter.see(data);
        if (this.strip && this.api.isUsageChunk(data)) {
          dropped = true;
          continue;
        }
      }
      kept?.push(e);
    }
    if (!kept || (!dropped && this.split.exact)) return chunk;
    return kept.join("");
  }

  // What is left to send when the stream ends (only when stripping: otherwise it was sent as it came).
  tail(): string {
    const t = this.split.flush();
    return this.strip ? t : "";
  }
}
