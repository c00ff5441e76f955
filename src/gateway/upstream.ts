// One call to a provider: the request as the member made it, with the provider's key and the model
// the portfolio chose; the response's headers as soon as they arrive (the body is the caller's to
// stream), or why there was none (a timeout, a refused connection: both worth the next model).
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import type { ApiShape } from "./apis.js";
import type { GatewayProvider } from "./providers.js";

const agents = {
  http: new http.Agent({ keepAlive: true, maxSockets: Infinity }),
  https: new https.Agent({ keepAlive: true, maxSockets: Infinity }),
};

// Headers of the member's request that reach the provider; everything else (its token above all)
// stays behind.
const PASSED = ["content-type", "accept", "anthropic-version", "anthropic-beta", "openai-beta", "user-agent"];

// Whether the member went away (its response closed before its end), and what to stop then: one
// listener on the response per call (an AbortController per call cost more than the rest of the
// call's own bookkeeping).
export class Gone {
  went = false;
  private readonly stops = new Set<() => void>();

  constructor(res: ServerResponse) {
    res.once("close", () => {
      if (res.writableFinished) return;
      this.went = true;
      for (const stop of this.stops) stop();
      this.stops.clear();
    });
  }

  // Run stop when the member goes away (at once if it has); the function returned forgets it.
  onGone(stop: () => void): () => void {
    if (this.went) {
      stop();
      return () => undefined;
    }
    this.stops.add(stop);
    return () => void this.stops.delete(stop);
  }

  // ms, or less if the member goes away first.
  pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        forget();
        resolve();
      };
      const timer = setTimeout(done, ms);
      const forget = this.onGone(done);
    });
  }
}

// Where an API is at a provider: its URL parsed once, as the request options node would make of it.
interface Target {
  tls: boolean;
  hostname: string;
  port: number | undefined;
  path: string;
  auth: string | undefined; // user:password in the URL, if the operator wrote one
}
const targets = new Map<string, Target>();
function targetOf(base: string, path: string): Target {
  const key = base + path;
  let t = targets.get(key);
  if (!t) {
    if (targets.size > 1000) targets.clear(); // the operator's table is small: this only bounds a leak
    const url = new URL(key);
    t = {
      tls: url.protocol === "https:",
      hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"), // an IPv6 literal without its brackets
      port: url.port ? Number(url.port) : undefined,
      path: url.pathname + url.search,
      auth: url.username ? `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}` : undefined,
    };
    targets.set(key, t);
  }
  return t;
}

export type Reply = { ok: true; res: IncomingMessage } | { ok: false; timeout: boolean; message: string };

export interface CallInput {
  api: ApiShape;
  provider: GatewayProvider;
  key: string;
  body: Buffer;
  headers: http.IncomingHttpHeaders;
  timeoutMs: number; // until the response's headers
  gone: Gone; // the member went away: the call is given up
}

export function callProvider(input: CallInput): Promise<Reply> {
  const to = targetOf(input.provider.baseUrl, input.api.upstreamPath);
  const options: http.RequestOptions = {
    hostname: to.hostname,
    ...(to.port !== undefined ? { port: to.port } : {}),
    path: to.path,
    ...(to.auth !== undefined ? { auth: to.auth } : {}),
    method: "POST",
    headers: upstreamHeaders(input),
    agent: to.tls ? agents.https : agents.http,
  };
  return new Promise<Reply>((resolve) => {
    let req: http.ClientRequest;
    let timer: NodeJS.Timeout | undefined;
    const stop = (why: string) => req.destroy(new Error(why));
    const send = (stale: number): void => {
      req = (to.tls ? https : http).request(options);
      req.on("response", (res) => {
        clearTimeout(timer);
        resolve({ ok: true, res });
      });
      req.on("error", (err) => {
        if (lostIdle(req, err) && stale < MAX_STALE && !input.gone.went) return send(stale + 1);
        clearTimeout(timer);
        const timeout = /no response within/.test(err.message);
        resolve({ ok: false, timeout, message: `${input.provider.name}: ${err.message}` });
      });
      req.end(input.body);
    };
    send(0);
    timer = setTimeout(() => stop(`no response within ${input.timeoutMs} ms`), input.timeoutMs);
    input.gone.onGone(() => stop("the member went away"));
  });
}

// Kept-alive connections to one provider that may be found closed in a row before a call is sent
// on a new one (each found closed leaves the agent's pool).
const MAX_STALE = 4;

// Whether the call was lost to a kept-alive connection the provider had closed as it idled: the
// request went out on a reused connection, and the connection was reset or ended before any byte of
// answer. The provider never saw the call (it closes a connection between requests, not within
// one), so it is sent again on another connection, as node's documentation advises; it is not the
// model's failure. Anything else (a new connection refused or reset, a timeout) is.
function lostIdle(req: http.ClientRequest, err: NodeJS.ErrnoException): boolean {
  if (!req.reusedSocket) return false;
  return err.code === "ECONNRESET" || err.code === "EPIPE"; // node's "socket hang up" is an ECONNRESET
}

// The member's request headers that reach the provider, with the provider's key and no compression.
function upstreamHeaders(input: CallInput): Record<string, string> {
  const headers: Record<string, string> = {
    "accept-encoding": "identity",
    "content-length": String(input.body.length),
  };
  for (const h of PASSED) {
    const v = input.headers[h];
    if (typeof v === "string") headers[h] = v;
  }
  return Object.assign(headers, input.api.authHeaders(input.key));
}

// A small body read whole (an error's), at most max bytes.
export async function readSmall(res: IncomingMessage, max = 1 << 20): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of res) {
    const b = chunk as Buffer;
    if (n + b.length > max) {
      parts.push(b.subarray(0, max - n));
      res.destroy();
      break;
    }
    parts.push(b);
    n += b.length;
  }
  return Buffer.concat(parts);
}
