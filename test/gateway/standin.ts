// Stand-in model providers for the gateway's tests: no provider is reachable from this machine,
// so one node HTTP server on 127.0.0.1 answers the OpenAI chat-completions and Anthropic messages
// APIs in their published shapes (streaming too). What it does per call is chosen by the model
// name: "busy-…" answers 429, "down-…" 503, "long-…" a context-length error, "split-…" streams
// non-ASCII words each written in two pieces cut inside a character, "liar-…" a completion whose
// usage lies, anything else a completion.
// Every request is recorded, with the credential it carried. A stream's shape (how many text
// events, how far apart, after how long a wait for the first) is an option, for the gateway bench
// (bench/gateway.ts); by default four words 5 ms apart.
import http, { type IncomingMessage, type ServerResponse } from "node:http";

export interface Seen {
  api: "openai" | "anthropic";
  model: string;
  key: string | undefined;
  body: Record<string, unknown>;
  headers: http.IncomingHttpHeaders; // as the provider got them
  url: string;
}

// How a stream is paced: `firstMs` before the first text event (the model's time to the first
// token), then `events` text events `gapMs` apart.
export interface StreamShape {
  events: number;
  gapMs: number;
  firstMs: number;
}

export interface StandinOptions {
  key: string;
  delayMs?: number; // before any answer
  stream?: StreamShape;
  record?: boolean; // keep every request in `seen` (default true; a long bench turns it off)
  keepAliveMs?: number; // how long an idle connection is kept (node's default, 5 s, unless given)
}

// What a real provider's answers carry about the operator's account (the gateway keeps it from members).
export const OPERATOR_HEADERS = {
  "openai-organization": "org-operator",
  "openai-project": "proj-operator",
  "anthropic-organization-id": "operator-org-id",
  "set-cookie": "__cf_bm=operator-session; path=/",
};

const DEFAULT_SHAPE: StreamShape = { events: 4, gapMs: 5, firstMs: 0 };

export interface Standin {
  url: string;
  seen: Seen[];
  close(): Promise<void>;
}

export async function startStandin(opts: StandinOptions): Promise<Standin> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => void answer(req, res, opts, seen));
  if (opts.keepAliveMs !== undefined) server.keepAliveTimeout = opts.keepAliveMs;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://localhost:${port}`, // a host name: the operator's provider table takes no IP literals
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function answer(req: IncomingMessage, res: ServerResponse, opts: StandinOptions, seen: Seen[]): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
  const api = req.url === "/v1/messages" ? "anthropic" : "openai";
  const key =
    api === "anthropic"
      ? (req.headers["x-api-key"] as string | undefined)
      : req.headers.authorization?.replace(/^Bearer /, "");
  const model = String(body.model);
  if (opts.record !== false) seen.push({ api, model, key, body, headers: req.headers, url: req.url ?? "" });
  if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
  const json = (status: number, b: unknown, h: Record<string, string> = {}): void => {
    res.writeHead(status, { "content-type": "application/json", ...OPERATOR_HEADERS, ...h });
    res.end(JSON.stringify(b));
  };
  if (key !== opts.key) return json(401, errorBody(api, "authentication_error", "bad key"));
  if (model.startsWith("busy-"))
    return json(429, errorBody(api, "rate_limit_error", "slow down"), { "retry-after": "0" });
  if (model.startsWith("down-")) return json(503, errorBody(api, "overloaded_error", "overloaded"));
  if (model.startsWith("long-")) {
    return json(
      400,
      errorBody(
        api,
        "invalid_request_error",
        api === "openai" ? "This model's maximum context length is 10 tokens" : "prompt is too long",
      ),
    );
  }
  const shape = opts.stream ?? DEFAULT_SHAPE;
  if (body.stream === true)
    return api === "openai" ? openaiStream(res, body, model, shape) : anthropicStream(res, model, shape);
  return json(200, api === "openai" ? openaiCompletion(model) : anthropicMessage(model));
}

function errorBody(api: string, type: string, message: string): unknown {
  return api === "anthropic"
    ? { type: "error", error: { type, message } }
    : { error: { message, type, param: null, code: null } };
}

const WORDS = ["Hello", " from", " the", " stand-in"];
export const SPLIT_WORDS = ["Grüße", " aus", " 東京", " 🙂"];
const wordsOf = (shape: StreamShape): string[] =>
  shape === DEFAULT_SHAPE ? WORDS : Array.from({ length: shape.events }, (_, i) => WORDS[i % WORDS.length] as string);

// Write text, or (split) its bytes in two writes 20 ms apart, cut inside its first non-ASCII
// character, so that the reader gets them as two chunks.
async function send(res: ServerResponse, text: string, split: boolean): Promise<void> {
  const b = Buffer.from(text);
  const cut = b.findIndex((x) => x >= 0x80) + 1;
  if (!split || cut === 0) return void res.write(b);
  res.write(b.subarray(0, cut));
  await pause(20);
  res.write(b.subarray(cut));
}
const pause = (ms: number): Promise<unknown> => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve());

// A usage report that lies, for "liar-huge-…" (counts past any budget and any float sum) and
// "liar-negative-…" (counts that would give spending back).
function liar(model: string): Record<string, number> | undefined {
  const n = model.startsWith("liar-huge-") ? 1e308 : model.startsWith("liar-negative-") ? -1e9 : undefined;
  return n === undefined ? undefined : { prompt_tokens: n, completion_tokens: n, total_tokens: n };
}

function openaiCompletion(model: string): unknown {
  return {
    id: "chatcmpl-1",
    object: "chat.completion",
    created: 1,
    model,
    choices: [
      { index: 0, message: { role: "assistant", content: WORDS.join("") }, finish_reason: "stop", logprobs: null },
    ],
    usage: liar(model) ?? { prompt_tokens: 11, completion_tokens: 4, total_tokens: 15 },
  };
}

function anthropicMessage(model: string): unknown {
  return {
    id: "msg_1",
    type: "message",
    role: "assistant",
    model,
    stop_reason: "end_turn",
    stop_sequence: null,
    content: [{ type: "text", text: WORDS.join("") }],
    usage: { input_tokens: 12, output_tokens: 4 },
  };
}

async function openaiStream(
  res: ServerResponse,
  body: Record<string, unknown>,
  model: string,
  shape: StreamShape,
): Promise<void> {
  res.writeHead(200, { "content-type": "text/event-stream", ...OPERATOR_HEADERS });
  res.flushHeaders();
  await pause(shape.firstMs);
  const split = model.startsWith("split-");
  const words = split ? SPLIT_WORDS : wordsOf(shape);
  const chunk = (delta: unknown, finish: string | null): string =>
    `data: ${JSON.stringify({ id: "c1", object: "chat.completion.chunk", created: 1, model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  res.write(chunk({ role: "assistant", content: "" }, null));
  for (const w of words) {
    await send(res, chunk({ content: w }, null), split);
    await pause(shape.gapMs);
  }
  res.write(chunk({}, "stop"));
  const opts = body.stream_options as { include_usage?: boolean } | undefined;
  if (opts?.include_usage) {
    res.write(
      `data: ${JSON.stringify({ id: "c1", object: "chat.completion.chunk", created: 1, model, choices: [], usage: { prompt_tokens: 11, completion_tokens: words.length, total_tokens: 11 + words.length } })}\n\n`,
    );
  }
  res.end("data: [DONE]\n\n");
}

async function anthropicStream(res: ServerResponse, model: string, shape: StreamShape): Promise<void> {
  res.writeHead(200, { "content-type": "text/event-stream", ...OPERATOR_HEADERS });
  res.flushHeaders();
  await pause(shape.firstMs);
  const words = wordsOf(shape);
  const ev = (type: string, data: Record<string, unknown>): string =>
    `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  res.write(
    ev("message_start", {
      message: {
        id: "msg_1",
        type: "message",
        role: "assistant",
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: 12, output_tokens: 1 },
      },
    }),
  );
  res.write(ev("content_block_start", { index: 0, content_block: { type: "text", text: "" } }));
  for (const w of words) {
    res.write(ev("content_block_delta", { index: 0, delta: { type: "text_delta", text: w } }));
    await pause(shape.gapMs);
  }
  res.write(ev("content_block_stop", { index: 0 }));
  res.write(
    ev("message_delta", {
      delta: { stop_reason: "end_turn", stop_sequence: null },
      usage: { output_tokens: words.length },
    }),
  );
  res.end(ev("message_stop", {}));
}
