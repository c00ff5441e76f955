// A provider's own ("server-side") tools that reach the network: the provider, not the member,
// fetches what the member names (Anthropic's web search and web fetch tools and its MCP connector,
// OpenAI's web search). Through the gateway they would take a `network: none` or egress cell past
// its isolation, so the gateway refuses a request that asks for one, unless the operator opens its
// kind for every cell (LAZARUS_GATEWAY_PROVIDER_TOOLS). Never a cell file's choice.
// Tools the member runs itself (custom and function tools, Anthropic's bash, text editor and
// computer tools) pass, and so does Anthropic's code execution tool: its container has no network.
import { LazarusError } from "../util/errors.js";

export const PROVIDER_TOOLS_SETTING = "LAZARUS_GATEWAY_PROVIDER_TOOLS";

export type ProviderToolKind = "web_search" | "web_fetch" | "mcp";
export const PROVIDER_TOOL_KINDS: readonly ProviderToolKind[] = ["web_search", "web_fetch", "mcp"];

// One provider tool a request asks for: its kind and where in the body it is asked for.
export interface ProviderTool {
  kind: ProviderToolKind;
  where: string; // e.g. tools[1].type "web_fetch_20250910"
}

const obj = (v: unknown): Record<string, unknown> | undefined =>
  v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;

// The kinds a setting's value opens: a comma list of kinds, or none (the default).
export function parseProviderTools(text: string | undefined): ProviderToolKind[] {
  const why = providerToolsProblem(text ?? "");
  if (why) throw new LazarusError("BAD_SETTING", `${PROVIDER_TOOLS_SETTING} ${JSON.stringify(text)} ${why}`);
  return splitKinds(text ?? "") as ProviderToolKind[];
}

const splitKinds = (text: string): string[] =>
  /^\s*none\s*$/i.test(text)
    ? []
    : text
        .split(",")
        .map((k) => k.trim())
        .filter(Boolean);

// Why a value of the setting is wrong (undefined: it is fine).
export function providerToolsProblem(text: string): string | undefined {
  const bad = splitKinds(text).filter((k) => !(PROVIDER_TOOL_KINDS as readonly string[]).includes(k));
  if (!bad.length) return undefined;
  const kinds = PROVIDER_TOOL_KINDS.join(", ");
  return `names ${bad.map((k) => JSON.stringify(k)).join(", ")}: not a provider tool kind (${kinds}), or none`;
}

// Each entry of `tools` whose type starts with one of these kinds (web_search_20250305: web_search).
function toolsOfType(body: Record<string, unknown>, kinds: ProviderToolKind[]): ProviderTool[] {
  if (!Array.isArray(body.tools)) return [];
  const out: ProviderTool[] = [];
  body.tools.forEach((t, i) => {
    const type = obj(t)?.type;
    if (typeof type !== "string") return;
    const kind = kinds.find((k) => type.toLowerCase().startsWith(k));
    if (kind) out.push({ kind, where: `tools[${i}].type ${JSON.stringify(type)}` });
  });
  return out;
}

const present = (v: unknown): boolean => v !== undefined && v !== null && v !== false;

// Anthropic Messages: web_search_* and web_fetch_* tool types, the MCP connector (a non-empty
// mcp_servers, and its mcp_toolset tool type).
export function anthropicProviderTools(body: Record<string, unknown>): ProviderTool[] {
  const out = toolsOfType(body, ["web_search", "web_fetch", "mcp"]);
  const servers = body.mcp_servers;
  if (present(servers) && !(Array.isArray(servers) && servers.length === 0)) {
    out.push({ kind: "mcp", where: "mcp_servers" });
  }
  return out;
}

// OpenAI chat completions: web_search_options, and web_search* or mcp tool types.
export function openaiProviderTools(body: Record<string, unknown>): ProviderTool[] {
  const out = toolsOfType(body, ["web_search", "mcp"]);
  if (present(body.web_search_options)) out.unshift({ kind: "web_search", where: "web_search_options" });
  return out;
}

// Why the gateway refuses a request asking for these tools with these kinds open, or undefined.
export function providerToolsRefusal(
  asked: readonly ProviderTool[],
  open: readonly ProviderToolKind[],
): string | undefined {
  const shut = asked.find((t) => !open.includes(t.kind));
  if (!shut) return undefined;
  return (
    `the provider's ${shut.kind} tool (${shut.where}) reaches the network for this cell, past its isolation: ` +
    `the model gateway refuses it unless the operator opens it with ${PROVIDER_TOOLS_SETTING}=${shut.kind}`
  );
}
