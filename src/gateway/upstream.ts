// One call to a provider: the request as the member made it, with the provider's key and the model
// the portfolio chose; the response's headers as soon as they arrive (the body is the caller's to
// stream), or why there was none (a timeout, a refused connection: both worth the next model).
import http, { type IncomingMessage } from "node:http";
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

export type Reply = { ok: true; res: IncomingMessage } | { ok: false; timeout: boolean; message: string };

export interface CallInput {
  api: ApiShape;
  provider: GatewayProvider;
  key: string;
  body: Buffer;
  headers: http.IncomingHttpHeaders;
  timeoutMs: number; // until the response's headers
  signal: AbortSignal; // the member went away
}

export function callProvider(input: CallInput): Promise<Reply> {
  const url = new URL(input.provider.baseUrl + input.api.upstreamPath);
  const headers: Record<string, string> = {
    "accept-encoding": "identity",
    "content-length": String(input.body.length),
  };
  for (const h of PASSED) {
    const v = input.headers[h];
    if (typeof v === "string") headers[h] = v;
  }
  Object.assign(headers, input.api.authHeaders(input.key));
  const tls = url.protocol === "https:";
  const mod = tls ? https : http;
  return new Promise<Reply>((resolve) => {
    const req = mod.request(url, {
      method: "POST",
      headers,
      agent: tls ? agents.https : agents.http,
      signal: input.signal,
    });
    const timer = setTimeout(() => req.destroy(new Error(`no response within ${input.timeoutMs} ms`)), input.timeoutMs);
    req.on("response", (res) => {
      clearTimeout(timer);
      resolve({ ok: true, res });
    });
    req.on("error", (err) => {
      clearTimeout(timer);
      resolve({
        ok: false,
        timeout: /no response within/.test(err.message),
        message: `${input.provider.name}: ${err.message}`,
      });
    });
    req.end(input.body);
  });
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
