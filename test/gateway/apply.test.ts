// The model gateway wired into Lazarus, through `lazarus apply` for real: process-cell members run
// test/fixtures/gateway-member.mjs, which calls models with the official openai and
// @anthropic-ai/sdk packages configured only by the environment Lazarus gives it. The providers
// are stand-ins (standin.ts, started here on 127.0.0.1): no real provider is reachable from this
// machine, and the stand-in records which key each call carried.
// Python's openai package is not tested: it is not installed on this machine (python3 -c "import
// openai" fails), the suite installs nothing, and the repo vendors no wheels of it and of its binary
// dependencies (pydantic-core, jiter) for a venv to be built from offline.
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lazarus, waitFor } from "../helpers.js";
import { gatewayEventsFile } from "../../src/gateway/state.js";
import { Metrics } from "../../src/daemon/metrics.js";
import { runningGateway } from "../../src/gateway/supervise.js";
import { ask, cell, environ, portfolio, startGatewayRun, type GatewayRun } from "./harness.js";

const KEY = "sk-operator-apply-0123456789abcdef";

let gw: GatewayRun;
const run = (...args: string[]) => gw.run(...args);
const cellDir = (cell: string) => gw.cellDir(cell);
const home = (cell: string, who: string) => gw.home(cell, who);
const memberOf = (cell: string) => gw.memberOf(cell);

const RICH = (state_ = "active", calls = "plain,stream,fallback,claude") =>
  cell(
    "rich",
    "ezra",
    calls,
    ["  credentials:", "    SO_KEY: {file: so/key}", "    FORGE_TOKEN: {file: forge/token}"],
    state_,
  );
const LEAN = (state_ = "active", tokens = 10) =>
  cell("lean", "lean", "plain,again", [`  budget: {tokens: ${tokens}, period: 1h}`], state_);

function calls(cell: string, who: string): Record<string, Record<string, unknown>> {
  const list = JSON.parse(readFileSync(path.join(home(cell, who), "calls.json"), "utf8")) as Record<string, unknown>[];
  return Object.fromEntries(list.map((c) => [String(c.name), c]));
}

// Every file under dir whose bytes hold needle.
function filesHolding(dir: string, needle: string): string[] {
  const out: string[] = [];
  const visit = (p: string): void => {
    const st = statSync(p, { throwIfNoEntry: false });
    if (!st) return;
    if (st.isDirectory()) for (const e of readdirSync(p)) visit(path.join(p, e));
    else if (st.isFile() && readFileSync(p).includes(needle)) out.push(p);
  };
  visit(dir);
  return out;
}

async function waitForAsync(check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 25));
  }
}

beforeAll(async () => {
  gw = await startGatewayRun({
    key: KEY,
    prefix: "lazarus-gw",
    secrets: { "so/key": KEY, "sa/key": KEY, "forge/token": "forge-token-not-brokered" },
    providers: (url) => [
      `{name: so, api: openai, baseUrl: "${url}/v1", keyFile: so/key}`,
      `{name: sa, api: anthropic, baseUrl: "${url}", keyFile: sa/key}`,
    ],
    files: {
      "portfolios/rich.yaml": portfolio(
        "rich",
        ["ezra"],
        [
          "{model: busy-1, provider: so}",
          "{model: gpt-ok, provider: so, price: {input: 1, output: 2}}",
          "{model: claude-ok, provider: sa}",
        ],
      ),
      "portfolios/lean.yaml": portfolio("lean", ["lean"], ["{model: gpt-ok, provider: so}"]),
      "cells.d/rich.yaml": RICH(),
      "cells.d/lean.yaml": LEAN(),
    },
    homes: [
      ["rich", "ezra"],
      ["lean", "lean"],
    ],
  });
}, 60_000);

afterAll(() => gw?.end());

describe("the model gateway through lazarus apply", () => {
  it("serves a process member's official SDK, whole and streamed, with the operator's key", () => {
    const c = calls("rich", "ezra");
    expect(c.plain).toMatchObject({ ok: true, text: "Hello from the stand-in", served: "gpt-ok" });
    expect(c.stream).toMatchObject({ ok: true, text: "Hello from the stand-in" });
    expect(c.claude).toMatchObject({ ok: true, model: "claude-ok", text: "Hello from the stand-in" });
    expect(gw.standin.seen.length).toBeGreaterThan(0);
    expect(gw.standin.seen.every((s) => s.key === KEY)).toBe(true);
  });

  it("falls back to the next model of the portfolio after a 429", () => {
    expect(calls("rich", "ezra").fallback).toMatchObject({
      ok: true,
      model: "gpt-ok",
      fallback: expect.stringContaining("busy-1: rate_limit"),
    });
  });

  it("refuses a member over its cell's budget with the provider-shaped 429", () => {
    const c = calls("lean", "lean");
    expect(c.plain).toMatchObject({ ok: true }); // asked under budget: served (15 tokens of 10)
    expect(c.again).toMatchObject({ ok: false, status: 429, kind: "RateLimitError" });
    expect(String(c.again?.message)).toMatch(/budget of cell lean is spent/);
  });

  it("gives the member the gateway and a token in its environment, never the provider key", async () => {
    const m = memberOf("rich");
    const e = environ(m.pid!);
    const port = await gw.port();
    expect(e.OPENAI_BASE_URL).toBe(`http://127.0.0.1:${port}/v1`);
    expect(e.ANTHROPIC_BASE_URL).toBe(`http://127.0.0.1:${port}`);
    expect(e.OPENAI_API_KEY).toMatch(/^lzg-/);
    expect(e.ANTHROPIC_API_KEY).toBe(e.OPENAI_API_KEY);
    expect(readFileSync(`/proc/${m.pid}/environ`, "utf8")).not.toContain(KEY);
  });

  it("keeps a brokered credential out of the cell's files, and the others in its manifest", () => {
    expect(filesHolding(cellDir("rich"), KEY)).toEqual([]);
    expect(filesHolding(cellDir("lean"), KEY)).toEqual([]);
    const manifest = JSON.parse(
      readFileSync(path.join(cellDir("rich"), ".lazarus", "secrets", "credentials.json"), "utf8"),
    );
    expect(manifest.credentials).toEqual({ FORGE_TOKEN: "forge-token-not-brokered" });
    // the gateway's cell file holds a digest, never the token
    const token = environ(memberOf("rich").pid!).OPENAI_API_KEY!;
    expect(filesHolding(path.join(gw.state, "gateway"), token)).toEqual([]);
  });

  it("plan says which credentials the gateway brokers, in text and JSON", async () => {
    writeFileSync(
      path.join(gw.config, "cells.d", "more.yaml"),
      cell("more", "ezra", "plain", ["  credentials:", "    SO_KEY: {file: so/key}"]),
    );
    const text = await run("plan");
    expect(text.stdout).toMatch(/more.*credential SO_KEY brokered by the model gateway/);
    const json = JSON.parse((await run("plan", "--json")).stdout) as {
      actions: { cell: string; brokered?: string[] }[];
    };
    expect(json.actions.find((a) => a.cell === "more")?.brokered).toEqual(["SO_KEY"]);
    rmSync(path.join(gw.config, "cells.d", "more.yaml"));
  });

  it("refuses a member's token once the member restarts, and serves the new one", async () => {
    const before = memberOf("rich");
    const old = environ(before.pid!).OPENAI_API_KEY!;
    const port = await gw.port();
    expect((await ask(old, port)).model).toBe("gpt-ok");
    writeFileSync(path.join(gw.config, "cells.d", "rich.yaml"), RICH("active", "plain"));
    const r = await run("apply");
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const after = memberOf("rich");
    expect(after.pid).not.toBe(before.pid);
    const fresh = environ(after.pid!).OPENAI_API_KEY!;
    expect(fresh).not.toBe(old);
    await expect(ask(old, port)).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    expect((await ask(fresh, port)).model).toBe("gpt-ok");
  });

  it("refuses what another cell's member asks outside its own portfolio, and a made-up token", async () => {
    const lean = environ(memberOf("lean").pid!).OPENAI_API_KEY!;
    const port = await gw.port();
    await expect(ask(lean, port, "claude-ok")).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(ask(`${lean}x`, port)).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it("refuses a provider's web search until the operator's LAZARUS_GATEWAY_PROVIDER_TOOLS opens it", async () => {
    const token = environ(memberOf("rich").pid!).OPENAI_API_KEY!;
    const port = await gw.port();
    const search = () =>
      new OpenAI({ apiKey: token, baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 }).chat.completions.create({
        model: "gpt-ok",
        messages: [{ role: "user", content: "hi" }],
        web_search_options: {},
      });
    const seen = gw.standin.seen.length;
    await expect(search()).rejects.toThrow(/LAZARUS_GATEWAY_PROVIDER_TOOLS=web_search/);
    expect(gw.standin.seen.length).toBe(seen);
    const opened = await lazarus(["apply", "--config", gw.config, "--state-dir", gw.state], {
      env: { ...gw.env, LAZARUS_GATEWAY_PROVIDER_TOOLS: "web_search" },
    });
    expect(opened.exitCode, opened.stdout + opened.stderr).toBe(0);
    // the gateway reads its settings again on the signal apply sends it: until then, the old ones
    const served = async (): Promise<boolean> =>
      search().then(
        () => true,
        (err: unknown) => (err instanceof OpenAI.PermissionDeniedError ? false : Promise.reject(err)),
      );
    await waitForAsync(served);
    expect(gw.standin.seen.at(-1)?.body.web_search_options).toEqual({});
    expect((await run("apply")).exitCode).toBe(0); // the setting gone: shut again
    await waitForAsync(async () => !(await served()));
    const n = gw.standin.seen.length;
    await expect(search()).rejects.toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(gw.standin.seen.length).toBe(n);
  });

  it("shows tokens and cost per cell and model in status (text and JSON) and the daemon's /metrics", async () => {
    const json = JSON.parse((await run("status", "--json")).stdout) as {
      cells: { name: string; models?: { tokens: number; budget: unknown; byModel: Record<string, unknown>[] } }[];
    };
    const lean = json.cells.find((c) => c.name === "lean")?.models;
    expect(lean?.budget).toEqual({ tokens: 10, periodMs: 3_600_000 });
    expect(lean?.byModel).toEqual([{ model: "gpt-ok", calls: 1, tokensIn: 11, tokensOut: 4, cost: 0 }]);
    const rich = json.cells.find((c) => c.name === "rich")?.models;
    // gpt-ok is priced 1 in, 2 out per million tokens: 11 in and 4 out cost 0.000019 a call
    const gpt = rich?.byModel.find((m) => m.model === "gpt-ok") as {
      calls: number;
      tokensIn: number;
      tokensOut: number;
      cost: number;
    };
    expect(gpt.calls).toBeGreaterThanOrEqual(3); // the member's calls, and this file's own
    expect(gpt).toMatchObject({ tokensIn: 11 * gpt.calls, tokensOut: 4 * gpt.calls });
    expect(gpt.cost).toBeCloseTo(gpt.calls * 0.000019, 9);
    const text = (await run("status", "lean")).stdout;
    expect(text).toMatch(/models, last 1h \(budget 10 tokens per 1h\): 15 tokens, cost 0\.0000/);
    expect(text).toMatch(/gpt-ok {2}1 call, 11 in, 4 out/);
    const metrics = new Metrics();
    metrics.watchGateway(gatewayEventsFile(gw.state));
    const scraped = await metrics.registry.metrics();
    expect(scraped).toMatch(/lazarus_gateway_tokens_total\{cell="lean",model="gpt-ok",direction="input"\} 11/);
    expect(scraped).toMatch(/lazarus_gateway_calls_total\{cell="rich",model="claude-ok"\} 1/);
  });

  it("applies a budget change to the next call without restarting the member", async () => {
    const before = memberOf("lean");
    const token = environ(before.pid!).OPENAI_API_KEY!;
    const port = await gw.port();
    await expect(ask(token, port)).rejects.toBeInstanceOf(OpenAI.RateLimitError);
    writeFileSync(path.join(gw.config, "cells.d", "lean.yaml"), LEAN("active", 1000));
    const r = await run("apply");
    expect(r.stdout).toMatch(/budget 10 tokens per 1h → 1000 tokens per 1h/);
    expect(memberOf("lean").pid).toBe(before.pid);
    expect((await ask(token, port)).model).toBe("gpt-ok");
  });

  it("refuses a closed cell's token at once, and stops the gateway when no cell is left", async () => {
    const token = environ(memberOf("rich").pid!).OPENAI_API_KEY!;
    const port = await gw.port();
    writeFileSync(path.join(gw.config, "cells.d", "rich.yaml"), RICH("closed"));
    expect((await run("apply")).exitCode).toBe(0);
    await expect(ask(token, port)).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    expect(await runningGateway(gw.state)).toBeDefined(); // lean still uses it
    writeFileSync(path.join(gw.config, "cells.d", "lean.yaml"), LEAN("closed", 1000));
    expect((await run("apply")).exitCode).toBe(0);
    expect(await runningGateway(gw.state)).toBeUndefined();
  });
  it("turning the gateway on for a live cell takes its key out and restarts its members into the gateway", async () => {
    const late = cell("late", "ezra", "plain", ["  credentials:", "    SO_KEY: {file: so/key}"]);
    writeFileSync(path.join(gw.config, "cells.d", "late.yaml"), late);
    const off = await lazarus(["apply", "--config", gw.config, "--state-dir", gw.state], {
      env: { ...gw.env, LAZARUS_GATEWAY: "off" },
    });
    expect(off.exitCode, off.stdout + off.stderr).toBe(0);
    const manifest = () =>
      JSON.parse(readFileSync(path.join(cellDir("late"), ".lazarus", "secrets", "credentials.json"), "utf8"))
        .credentials as Record<string, string>;
    expect(manifest()).toEqual({ SO_KEY: KEY }); // as before the gateway
    const before = memberOf("late");
    expect(environ(before.pid!).OPENAI_BASE_URL).toBeUndefined();
    await waitFor(() => existsSync(path.join(home("late", "ezra"), "calls.json")), 15_000);
    expect(calls("late", "ezra").plain).toMatchObject({ ok: false }); // no key, no gateway
    rmSync(path.join(home("late", "ezra"), "calls.json"));
    const on = await run("apply");
    expect(on.stdout).toMatch(/brokered credentials none → SO_KEY/);
    expect(manifest()).toEqual({});
    const after = memberOf("late");
    expect(after.pid).not.toBe(before.pid);
    expect(environ(after.pid!).OPENAI_BASE_URL).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    await waitFor(() => existsSync(path.join(home("late", "ezra"), "calls.json")), 15_000);
    expect(calls("late", "ezra").plain).toMatchObject({ ok: true, served: "gpt-ok" });
  });
});
