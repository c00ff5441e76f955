// Stand-in model providers for the gateway's tests: no provider is reachable from this machine,
// so one node HTTP server on 127.0.0.1 answers the OpenAI chat-completions and Anthropic messages
// APIs in their published shapes (streaming too). What it does per call is chosen by the model
// name: "busy-…" answers 429, "down-…" 503, "long-…" a context-length error, anything else a
// completion. Every request is recorded, with the credential it carried.
import http, { type IncomingMessage, type ServerResponse } from "node:http";

export interface Seen {
  api: "openai" | "anthropic";
  model: string;
  key: string | undefined;
  body: Record<string, unknown>;
}

export interface Standin {
  url: string;
  seen: Seen[];
  close(): Promise<void>;
}

export async function startStandin(opts: { key: string; delayMs?: number }): Promise<Standin> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => void answer(req, res, opts, seen));
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

async function answer(
  req: IncomingMessage,
  res: ServerResponse,
  opts: { key: string; delayMs?: number },
  seen: Seen[],
): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
  const api = req.url === "/v1/messages" ? "anthropic" : "openai";
  const key =
    api === "anthropic"
      ? (req.headers["x-api-key"] as string | undefined)
      : req.headers.authorization?.replace(/^Bearer /, "");
  const model = String(body.model);
  seen.push({ api, model, key, body });
  if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
  const json = (status: number, b: unknown, h: Record<string, string> = {}): void => {
    res.writeHead(status, { "content-type": "application/json", ...h });
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
  if (body.stream === true) return api === "openai" ? openaiStream(res, body, model) : anthropicStream(res, model);
  return json(200, api === "openai" ? openaiCompletion(model) : anthropicMessage(model));
}

function errorBody(api: string, type: string, message: string): unknown {
  return api === "anthropic"
    ? { type: "error", error: { type, message } }
    : { error: { message, type, param: null, code: null } };
}

const WORDS = ["Hello", " from", " the", " stand-in"];

function openaiCompletion(model: string): unknown {
  return {
    id: "chatcmpl-1",
    object: "chat.completion",
    created: 1,
    model,
    choices: [
      { index: 0, message: { role: "assistant", content: WORDS.join("") }, finish_reason: "stop", logprobs: null },
    ],
    usage: { prompt_tokens: 11, completion_tokens: 4, total_tokens: 15 },
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

async function openaiStream(res: ServerResponse, body: Record<string, unknown>, model: string): Promise<void> {
  res.writeHead(200, { "content-type": "text/event-stream" });
  const chunk = (delta: unknown, finish: string | null): string =>
    `data: ${JSON.stringify({ id: "c1", object: "chat.completion.chunk", created: 1, model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  res.write(chunk({ role: "assistant", content: "" }, null));
  for (const w of WORDS) {
    res.write(chunk({ content: w }, null));
    await new Promise((r) => setTimeout(r, 5));
  }
  res.write(chunk({}, "stop"));
  const opts = body.stream_options as { include_usage?: boolean } | undefined;
  if (opts?.include_usage) {
    res.write(
      `data: ${JSON.stringify({ id: "c1", object: "chat.completion.chunk", created: 1, model, choices: [], usage: { prompt_tokens: 11, completion_tokens: 4, total_tokens: 15 } })}\n\n`,
    );
  }
  res.end("data: [DONE]\n\n");
}

async function anthropicStream(res: ServerResponse, model: string): Promise<void> {
  res.writeHead(200, { "content-type": "text/event-stream" });
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
  for (const w of WORDS) {
    res.write(ev("content_block_delta", { index: 0, delta: { type: "text_delta", text: w } }));
    await new Promise((r) => setTimeout(r, 5));
  }
  res.write(ev("content_block_stop", { index: 0 }));
  res.write(
    ev("message_delta", { delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: 4 } }),
  );
  res.end(ev("message_stop", {}));
}
