// The provider APIs the gateway speaks, each as one object: where members call it, where the
// provider serves it, how a key is sent, how errors look, where usage is reported and which
// failures mean "try the next model". Bodies pass through unchanged apart from the model (and,
// for an OpenAI stream, the usage report the gateway needs for budgets: see prepare).
import type { ErrorClass } from "../portfolio/types.js";
import { anthropicProviderTools, openaiProviderTools, type ProviderTool } from "./provider-tools.js";

export type ApiName = "openai" | "anthropic";
export const API_NAMES: readonly ApiName[] = ["openai", "anthropic"];

export interface Usage {
  input: number;
  output: number;
}

// What the gateway itself answers with, shaped like the provider's own errors so that an SDK
// raises its usual exception (401 → AuthenticationError, 429 → RateLimitError, …).
export type GatewayError =
  "auth" | "forbidden" | "model" | "budget" | "bad_request" | "too_large" | "upstream" | "method";
const STATUS: Record<GatewayError, number> = {
  auth: 401,
  forbidden: 403,
  model: 404,
  budget: 429,
  bad_request: 400,
  too_large: 413,
  upstream: 502,
  method: 405,
};

export interface Prepared {
  body: Record<string, unknown>;
  stripUsageChunk: boolean; // the gateway asked for a usage chunk the member did not: drop it
}

export interface ApiShape {
  name: ApiName;
  route: string; // the POST path members call on the gateway
  upstreamPath: string; // appended to the provider's base URL
  authHeaders(key: string): Record<string, string>;
  error(kind: GatewayError, message: string): { status: number; body: unknown };
  prepare(body: Record<string, unknown>, model: string): Prepared;
  // The provider's own tools that reach the network a body asks for (provider-tools.ts).
  providerTools(body: Record<string, unknown>): ProviderTool[];
  usageOf(body: unknown): Usage | undefined;
  streamUsage(): StreamUsage;
  isUsageChunk(data: unknown): boolean;
  modelList(models: { id: string; provider: string }[]): unknown;
}

export interface StreamUsage {
  see(data: unknown): void;
  usage(): Usage | undefined;
}

// A token count from a provider's usage report: a number from 0 to MAX_SAFE_INTEGER (a negative or
// missing one counts 0, a larger one that much): sums and costs stay finite, so what is written to
// the usage file (JSON has no Infinity) is what was counted, and is still counted after a restart.
const num = (v: unknown): number =>
  typeof v === "number" && Number.isFinite(v) && v >= 0 ? Math.min(v, Number.MAX_SAFE_INTEGER) : 0;
const obj = (v: unknown): Record<string, unknown> | undefined =>
  v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;

function openaiUsage(body: unknown): Usage | undefined {
  const u = obj(obj(body)?.usage);
  return u ? { input: num(u.prompt_tokens), output: num(u.completion_tokens) } : undefined;
}

function anthropicInput(u: Record<string, unknown>): number {
  return num(u.input_tokens) + num(u.cache_creation_input_tokens) + num(u.cache_read_input_tokens);
}

const openai: ApiShape = {
  name: "openai",
  route: "/v1/chat/completions",
  upstreamPath: "/chat/completions",
  authHeaders: (key) => ({ authorization: `Bearer ${key}` }),
  error: (kind, message) => ({
    status: STATUS[kind],
    body: { error: { message, type: openaiType(kind), param: null, code: openaiCode(kind) } },
  }),
  prepare(body, model) {
    const out: Record<string, unknown> = { ...body, model };
    if (body.stream !== true) return { body: out, stripUsageChunk: false };
    const opts = obj(body.stream_options) ?? {};
    if (opts.include_usage === true) return { body: out, stripUsageChunk: false };
    return { body: { ...out, stream_options: { ...opts, include_usage: true } }, stripUsageChunk: true };
  },
  providerTools: openaiProviderTools,
  usageOf: openaiUsage,
  streamUsage() {
    let last: Usage | undefined;
    return { see: (d) => void (last = openaiUsage(d) ?? last), usage: () => last };
  },
  isUsageChunk: (d) => {
    const o = obj(d);
    return !!o && Array.isArray(o.choices) && o.choices.length === 0 && obj(o.usage) !== undefined;
  },
  modelList: (models) => ({
    object: "list",
    data: models.map((m) => ({ id: m.id, object: "model", created: 0, owned_by: m.provider })),
  }),
};

function openaiType(kind: GatewayError): string {
  if (kind === "auth") return "authentication_error";
  if (kind === "budget") return "insufficient_quota";
  if (kind === "upstream") return "api_error";
  return "invalid_request_error";
}

function openaiCode(kind: GatewayError): string | null {
  if (kind === "auth") return "invalid_api_key";
  if (kind === "model") return "model_not_found";
  if (kind === "forbidden") return "tool_not_allowed";
  if (kind === "budget") return "budget_exceeded";
  return null;
}

const anthropic: ApiShape = {
  name: "anthropic",
  route: "/v1/messages",
  upstreamPath: "/v1/messages",
  authHeaders: (key) => ({ "x-api-key": key }),
  error: (kind, message) => ({
    status: STATUS[kind],
    body: { type: "error", error: { type: anthropicType(kind), message } },
  }),
  prepare: (body, model) => ({ body: { ...body, model }, stripUsageChunk: false }),
  providerTools: anthropicProviderTools,
  usageOf(body) {
    const u = obj(obj(body)?.usage);
    return u ? { input: anthropicInput(u), output: num(u.output_tokens) } : undefined;
  },
  streamUsage() {
    let input: number | undefined;
    let output = 0;
    const see = (d: unknown): void => {
      const o = obj(d);
      if (o?.type === "message_start") input = anthropicInput(obj(obj(o.message)?.usage) ?? {});
      if (o?.type === "message_delta") output = num(obj(o.usage)?.output_tokens);
    };
    return { see, usage: () => (input === undefined ? undefined : { input, output }) };
  },
  isUsageChunk: () => false,
  modelList: (models) => ({
    data: models.map((m) => ({ type: "model", id: m.id, display_name: m.id, created_at: "1970-01-01T00:00:00Z" })),
    has_more: false,
    first_id: models[0]?.id ?? null,
    last_id: models.at(-1)?.id ?? null,
  }),
};

function anthropicType(kind: GatewayError): string {
  if (kind === "auth") return "authentication_error";
  if (kind === "model") return "not_found_error";
  if (kind === "forbidden") return "permission_error";
  if (kind === "budget") return "rate_limit_error";
  if (kind === "too_large") return "request_too_large";
  if (kind === "upstream") return "api_error";
  return "invalid_request_error";
}

export const APIS: Readonly<Record<ApiName, ApiShape>> = { openai, anthropic };

// Which error class a provider's failure is, for the portfolio's fallback rules; undefined when it
// is the member's own mistake (a bad request), which is answered as the provider answered it.
export function classify(status: number, text: string): ErrorClass | undefined {
  if (status === 429) return "rate_limit";
  if (status === 408) return "timeout";
  if (status >= 500) return "server_error"; // 529 is Anthropic's "overloaded"
  if (status === 401 || status === 403) return "auth";
  if (status === 400 || status === 413 || status === 422) {
    if (/context.length|context_length_exceeded|prompt is too long|maximum context|too many tokens/i.test(text)) {
      return "context_window";
    }
    if (/content.policy|content_filter|safety system/i.test(text)) return "content_policy";
  }
  return undefined;
}
