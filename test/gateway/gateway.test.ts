// The model gateway against the official SDKs (openai, @anthropic-ai/sdk) as clients, and
// stand-in providers (standin.ts: no provider is reachable from here) as upstreams.
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { execFile } from "node:child_process";
import http from "node:http";
import type { Socket } from "node:net";
import { promisify } from "node:util";
import os from "node:os";
import path from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Gateway } from "../../src/gateway/server.js";
import {
  GATEWAY_MEMBER_PORT,
  gatewayCellsDir,
  gatewayEventsFile,
  type GatewayCellFile,
  type PortfolioDoc,
} from "../../src/gateway/state.js";
import { writeGatewayCell } from "./cell-file.js";
import { SPLIT_WORDS, startStandin, type Standin } from "./standin.js";
import { startStaleProvider, type StaleProvider } from "./stale-provider.js";
import { ensureNetns, memberNetnsFile, removeNetns } from "../../src/bridge/netns.js";
import { netnsSkipReason } from "../egress/helpers.js";

const exec = promisify(execFile);

const KEY = "sk-operator-secret-0123456789";
let dir: string;
let state: string;
let standin: Standin;
let slow: Standin; // answers after SLOW_MS: a member can hang up while it is answering
const SLOW_MS = 400;
let stale: StaleProvider; // closes a kept-alive connection as the next request arrives on it
let gw: Gateway;
let base: string;

function portfolio(name: string, models: [string, string][]): PortfolioDoc {
  return {
    name,
    appliesTo: { agents: [], taskClasses: [] },
    models: models.map(([model, provider]) => ({ model, provider })),
    retries: { attempts: 0, backoffMs: 0, maxRetryAfterMs: 1000 },
    cooldown: { allowedFails: 1, windowMs: 60_000, durationMs: 60_000 },
    fallbackOn: ["rate_limit", "timeout", "server_error", "context_window", "content_policy", "auth"],
  };
}

const tokens = new Map<string, string>();
// The gateway's file for a cell of these members (tokens kept in tokens, see cell-file.ts).
function writeCell(
  cell: string,
  members: string[],
  portfolio: PortfolioDoc,
  extra: Partial<GatewayCellFile> = {},
  netnsOf: Record<string, string> = {},
): Promise<void> {
  return writeGatewayCell({ state, tokens, cell, members, portfolio, extra, netnsOf });
}

const openai = (who: string): OpenAI =>
  new OpenAI({ apiKey: tokens.get(who) ?? "lzg-none", baseURL: `${base}/v1`, maxRetries: 0 });
const anthropic = (who: string): Anthropic =>
  new Anthropic({ apiKey: tokens.get(who) ?? "lzg-none", baseURL: base, maxRetries: 0 });

async function events(): Promise<Record<string, unknown>[]> {
  await new Promise((r) => setTimeout(r, 50));
  return (await readFile(gatewayEventsFile(state), "utf8"))
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function waitUntil(ok: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 10));
  }
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "lz-gateway-"));
  state = path.join(dir, "state");
  const secrets = path.join(dir, "secrets");
  await mkdir(path.join(secrets, "so"), { recursive: true });
  await mkdir(path.join(secrets, "sa"), { recursive: true });
  await writeFile(path.join(secrets, "so", "key"), `${KEY}\n`);
  await writeFile(path.join(secrets, "sa", "key"), `${KEY}\n`);
  standin = await startStandin({ key: KEY });
  slow = await startStandin({ key: KEY, delayMs: SLOW_MS });
  stale = await startStaleProvider();
  const providers = path.join(dir, "providers.yaml");
  await writeFile(
    providers,
    [
      "providers:",
      `  - {name: so, api: openai, baseUrl: "${standin.url}/v1", keyFile: so/key}`,
      `  - {name: sa, api: anthropic, baseUrl: "${standin.url}", keyFile: sa/key}`,
      `  - {name: sl, api: openai, baseUrl: "${slow.url}/v1", keyFile: so/key}`,
      `  - {name: st, api: openai, baseUrl: "${stale.url}/v1", keyFile: so/key}`,
    ].join("\n"),
  );
  await writeCell(
    "alpha",
    ["coder", "reviewer"],
    portfolio("fast", [
      ["busy-1", "so"],
      ["gpt-ok", "so"],
      ["busy-claude", "sa"],
      ["claude-ok", "sa"],
    ]),
  );
  // gpt-ok answers 11 tokens in and 4 out: at 1,000,000 per million each, a call costs 15.
  await writeCell("delta", ["coder"], portfolio("priced", [["gpt-ok", "so"]]), {
    budget: { cost: 20, periodMs: 3600_000 },
    prices: { "gpt-ok": { input: 1_000_000, output: 1_000_000 } },
  });
  await writeCell("beta", ["coder"], portfolio("cheap", [["gpt-ok", "so"]]), {
    budget: { tokens: 20, periodMs: 3600_000 },
  });
  await writeCell("gamma", ["coder"], portfolio("split", [["split-gpt", "so"]]));
  // one failure puts a model in cooldown (portfolio()): the next call would go to gpt-ok
  await writeCell(
    "zeta",
    ["coder"],
    portfolio("patient", [
      ["slow-1", "sl"],
      ["gpt-ok", "so"],
    ]),
  );
  await writeCell(
    "eta",
    ["coder"],
    portfolio("kept", [
      ["stale-ok", "st"],
      ["gpt-ok", "so"],
    ]),
  );
  gw = new Gateway({ stateRoot: state, host: { secretsDir: secrets }, env: { LAZARUS_PROVIDERS: providers } });
  await gw.reload();
  base = `http://127.0.0.1:${await gw.listen(0, "127.0.0.1")}`;
});

afterAll(async () => {
  await gw?.close();
  await standin?.close();
  await slow?.close();
  await stale?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("model gateway", () => {
  it("serves an OpenAI chat completion with the operator's key, never the member's token", async () => {
    const { data, response } = await openai("beta/coder")
      .chat.completions.create({ model: "gpt-ok", messages: [{ role: "user", content: "hi" }] })
      .withResponse();
    expect(data.choices[0]?.message.content).toBe("Hello from the stand-in");
    expect(response.headers.get("x-lazarus-model")).toBe("gpt-ok");
    const last = standin.seen.at(-1);
    expect(last?.key).toBe(KEY);
    expect(JSON.stringify(last)).not.toContain(tokens.get("beta/coder"));
  });

  it("falls back to the next model after a 429 and says which model served", async () => {
    const { data, response } = await openai("alpha/coder")
      .chat.completions.create({ model: "portfolio", messages: [{ role: "user", content: "hi" }] })
      .withResponse();
    expect(data.model).toBe("gpt-ok");
    expect(response.headers.get("x-lazarus-model")).toBe("gpt-ok");
    expect(response.headers.get("x-lazarus-fallback")).toContain("busy-1: rate_limit");
    const ev = (await events()).filter((e) => e.cell === "alpha").at(-1);
    expect(ev).toMatchObject({
      member: "coder",
      asked: "portfolio",
      used: "gpt-ok",
      status: 200,
      tokensIn: 11,
      tokensOut: 4,
    });
  });

  it("shares a model's cooldown between the members of a cell", async () => {
    const before = standin.seen.filter((s) => s.model === "busy-1").length;
    const r = await openai("alpha/reviewer").chat.completions.create({
      model: "portfolio",
      messages: [{ role: "user", content: "hi" }],
    });
    expect(r.model).toBe("gpt-ok");
    expect(standin.seen.filter((s) => s.model === "busy-1").length).toBe(before); // skipped: in cooldown
  });

  it("sends a call again on a new connection when the provider closed the kept-alive one it was sent on", async () => {
    const ask = () =>
      openai("eta/coder")
        .chat.completions.create({ model: "portfolio", messages: [{ role: "user", content: "hi" }] })
        .withResponse();
    for (let i = 0; i < 3; i++) {
      const { data, response } = await ask();
      expect(data.choices[0]?.message.content).toBe("fresh connection");
      expect(response.headers.get("x-lazarus-model")).toBe("stale-ok"); // no fallback, no cooldown
    }
    expect(stale.answered).toBe(3);
    expect(stale.connections).toBe(3); // calls 2 and 3 each met a closed connection first, then a new one
    const mine = (await events()).filter((e) => e.cell === "eta");
    expect(mine.map((e) => [e.used, e.fallback])).toEqual(Array(3).fill(["stale-ok", undefined]));
  });

  it("does not hold it against the model when the member hangs up while the provider is answering", async () => {
    const asked = slow.seen.length;
    const fallbacks = standin.seen.filter((s) => s.model === "gpt-ok").length;
    const hangUp = new AbortController();
    const first = openai("zeta/coder")
      .chat.completions.create(
        { model: "portfolio", messages: [{ role: "user", content: "hi" }] },
        { signal: hangUp.signal },
      )
      .catch((e: unknown) => e);
    await waitUntil(() => slow.seen.length > asked); // the provider has the call and is answering
    hangUp.abort();
    expect(await first).toBeInstanceOf(OpenAI.APIUserAbortError);
    await waitUntil(async () => (await events()).some((e) => e.cell === "zeta"));
    expect((await events()).filter((e) => e.cell === "zeta")).toEqual([
      expect.objectContaining({ refused: "the member went away", tried: ["slow-1: unfinished"] }),
    ]);
    // The same member asks again: the same model serves it (no cooldown), without a fallback.
    const { data, response } = await openai("zeta/coder")
      .chat.completions.create({ model: "portfolio", messages: [{ role: "user", content: "hi" }] })
      .withResponse();
    expect(data.model).toBe("slow-1");
    expect(response.headers.get("x-lazarus-fallback")).toBeNull();
    const ev = (await events()).filter((e) => e.cell === "zeta");
    expect(ev).toHaveLength(2);
    expect(ev[1]).toMatchObject({ used: "slow-1", status: 200 });
    expect(ev[1]).not.toHaveProperty("fallback");
    expect(standin.seen.filter((s) => s.model === "gpt-ok")).toHaveLength(fallbacks); // never asked
  });

  it("relays an OpenAI stream as it arrives, counting usage without showing the member a chunk it did not ask for", async () => {
    const stream = await openai("alpha/coder").chat.completions.create({
      model: "gpt-ok",
      stream: true,
      messages: [{ role: "user", content: "hi" }],
    });
    let text = "";
    for await (const chunk of stream) {
      expect(chunk.choices.length).toBeGreaterThan(0);
      text += chunk.choices[0]?.delta.content ?? "";
    }
    expect(text).toBe("Hello from the stand-in");
    expect((standin.seen.at(-1)?.body.stream_options as { include_usage?: boolean }).include_usage).toBe(true);
    const ev = (await events()).at(-1);
    expect(ev).toMatchObject({ used: "gpt-ok", tokensIn: 11, tokensOut: 4 });
    expect(typeof ev?.firstByteMs).toBe("number");
  });

  it("relays a stream whose chunks end inside a character without changing a byte, dropping only the usage chunk", async () => {
    const stream = await openai("gamma/coder").chat.completions.create({
      model: "split-gpt",
      stream: true,
      messages: [{ role: "user", content: "hi" }],
    });
    let text = "";
    for await (const chunk of stream) {
      expect(chunk.choices.length).toBeGreaterThan(0);
      text += chunk.choices[0]?.delta.content ?? "";
    }
    expect(text).toBe(SPLIT_WORDS.join(""));
    expect((await events()).at(-1)).toMatchObject({ cell: "gamma", used: "split-gpt", tokensIn: 11, tokensOut: 4 });
  });

  it("streams answers one after another over one kept-alive connection, each whole, leaving nothing on it", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const served: Socket[] = [];
    const onConnection = (s: Socket): void => void served.push(s);
    gw.server.on("connection", onConnection);
    const body = JSON.stringify({ model: "gpt-ok", stream: true, messages: [{ role: "user", content: "hi" }] });
    const call = (): Promise<{ text: string; socket: unknown }> =>
      new Promise((resolve, reject) => {
        const req = http.request(`${base}/v1/chat/completions`, {
          method: "POST",
          agent,
          headers: { "content-type": "application/json", authorization: `Bearer ${tokens.get("alpha/coder")}` },
        });
        req.on("response", (res) => {
          const parts: Buffer[] = [];
          res.on("data", (c: Buffer) => parts.push(c));
          res.on("end", () => resolve({ text: Buffer.concat(parts).toString("utf8"), socket: req.socket }));
          res.on("error", reject);
        });
        req.on("error", reject);
        req.end(body);
      });
    try {
      const answers = [await call(), await call(), await call()];
      for (const a of answers) {
        const data = a.text.split("\n\n").filter(Boolean);
        expect(data.at(-1)).toBe("data: [DONE]");
        const words = data
          .slice(0, -1)
          .map((d) => JSON.parse(d.slice(6)) as { choices: { delta: { content?: string } }[] });
        expect(words.map((w) => w.choices[0]?.delta.content ?? "").join("")).toBe("Hello from the stand-in");
      }
      expect(new Set(answers.map((a) => a.socket)).size).toBe(1);
      expect(served).toHaveLength(1);
      expect(served[0]?.listenerCount("drain")).toBeLessThanOrEqual(1); // node's own, not one per answer
    } finally {
      gw.server.off("connection", onConnection);
      agent.destroy();
    }
  });

  it("serves Anthropic messages, whole and streamed, falling back within the Anthropic models", async () => {
    const msg = await anthropic("alpha/coder").messages.create({
      model: "portfolio",
      max_tokens: 10,
      messages: [{ role: "user", content: "hi" }],
    });
    expect(msg.model).toBe("claude-ok");
    expect(msg.content[0]).toMatchObject({ type: "text", text: "Hello from the stand-in" });
    const stream = anthropic("alpha/coder").messages.stream({
      model: "claude-ok",
      max_tokens: 10,
      messages: [{ role: "user", content: "hi" }],
    });
    const final = await stream.finalMessage();
    expect(final.content[0]).toMatchObject({ type: "text", text: "Hello from the stand-in" });
    const ev = (await events()).at(-1);
    expect(ev).toMatchObject({ api: "anthropic", used: "claude-ok", tokensIn: 12, tokensOut: 4 });
  });

  it("refuses a model outside the member's portfolio and an unknown token, as the SDKs expect", async () => {
    await expect(
      openai("alpha/coder").chat.completions.create({
        model: "gpt-5-huge",
        messages: [{ role: "user", content: "hi" }],
      }),
    ).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(
      openai("nobody").chat.completions.create({ model: "gpt-ok", messages: [{ role: "user", content: "hi" }] }),
    ).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    await expect(
      anthropic("nobody").messages.create({
        model: "claude-ok",
        max_tokens: 5,
        messages: [{ role: "user", content: "hi" }],
      }),
    ).rejects.toBeInstanceOf(Anthropic.AuthenticationError);
  });

  it("refuses a cell over its budget with the provider's 429 until usage leaves the window", async () => {
    await openai("beta/coder")
      .chat.completions.create({ model: "gpt-ok", messages: [{ role: "user", content: "hi" }] })
      .catch(() => undefined);
    const err = await openai("beta/coder")
      .chat.completions.create({ model: "gpt-ok", messages: [{ role: "user", content: "hi" }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(String((err as Error).message)).toMatch(/budget of cell beta is spent/);
    expect((await events()).at(-1)).toMatchObject({ cell: "beta", status: 429 });
  });

  it("counts a call's cost from the portfolio's prices, and refuses a cell whose cost budget is spent", async () => {
    const ask = () =>
      openai("delta/coder").chat.completions.create({ model: "gpt-ok", messages: [{ role: "user", content: "hi" }] });
    await ask(); // 15 of 20
    await ask(); // 30 of 20: served, it was asked under budget
    const err = await ask().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(String((err as Error).message)).toMatch(/30\.0000 of 20 in cost/);
  });

  it("sees a cell file written or removed while it runs at the very next call, without being told", async () => {
    const ask = () =>
      openai("eps/coder").chat.completions.create({ model: "gpt-ok", messages: [{ role: "user", content: "hi" }] });
    for (let i = 0; i < 3; i++) {
      await writeCell("eps", ["coder"], portfolio("eps", [["gpt-ok", "so"]]));
      expect((await ask()).model).toBe("gpt-ok");
      await rm(path.join(gatewayCellsDir(state), "eps.json"));
      await expect(ask()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    }
  });

  it("refuses a closed cell's token once the gateway reloads", async () => {
    const client = openai("alpha/reviewer");
    await rm(path.join(gatewayCellsDir(state), "alpha.json"));
    await gw.reload();
    await expect(
      client.chat.completions.create({ model: "gpt-ok", messages: [{ role: "user", content: "hi" }] }),
    ).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });
});

describe.skipIf(netnsSkipReason() !== undefined)("a member's own door", () => {
  it("is 127.0.0.1:4000 in the member's network namespace, accepts only its token, and closes when it leaves", async () => {
    const netns = memberNetnsFile(state, "gamma-uid", "one");
    const ino = await ensureNetns(netns);
    try {
      await writeCell("gamma", ["one", "two"], portfolio("solo", [["gpt-ok", "so"]]), {}, { one: netns });
      await gw.reload();
      expect(gw.openDoors().listening()).toEqual({ [netns]: ino });
      // curl run inside the namespace, as the member runs it (async: the gateway is this process)
      const call = async (who: string): Promise<string> => {
        const r = await exec("nsenter", [
          `--net=${netns}`,
          "--",
          "curl",
          "-sS",
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          "-H",
          `authorization: Bearer ${tokens.get(who)}`,
          "-H",
          "content-type: application/json",
          "-d",
          JSON.stringify({ model: "gpt-ok", messages: [{ role: "user", content: "hi" }] }),
          `http://127.0.0.1:${GATEWAY_MEMBER_PORT}/v1/chat/completions`,
        ]).catch((e: { stdout: string; code: number }) => ({ stdout: `${e.stdout} exit=${e.code}` }));
        return r.stdout;
      };
      expect(await call("gamma/one")).toBe("200");
      expect(await call("gamma/two")).toBe("401"); // a teammate's token, on this member's door
      expect(await call("beta/coder")).toBe("401"); // another cell's token
      await writeCell("gamma", ["two"], portfolio("solo", [["gpt-ok", "so"]]));
      await gw.reload();
      expect(gw.openDoors().listening()).toEqual({});
      expect(await call("gamma/one")).toMatch(/exit=7$/); // refused: nothing listens there any more
    } finally {
      await removeNetns(netns);
    }
  });
});
