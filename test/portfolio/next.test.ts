import { describe, expect, it } from "vitest";
import { combine, loadFileText, loadPortfolioText } from "../../src/config/load.js";
import { formatDiagnostic } from "../../src/config/diagnostics.js";
import { nextModel, type HealthEvent, type NextModelInput } from "../../src/portfolio/next.js";
import { resolvePortfolio } from "../../src/portfolio/resolve.js";
import { importLegacy } from "../../src/portfolio/legacy.js";
import type { Portfolio } from "../../src/portfolio/types.js";
import { cellYaml } from "../helpers.js";

const yaml = (name: string, spec: string) =>
  `apiVersion: lazarus/v1\nkind: Portfolio\nmetadata:\n  name: ${name}\nspec:\n${spec}\n`;
const load = (text: string, file = "portfolios/p.yaml") => {
  const r = loadPortfolioText(file, text);
  if (r.diagnostics.length > 0) throw new Error(r.diagnostics.map(formatDiagnostic).join("\n"));
  return r.portfolios;
};

const coder = load(
  yaml(
    "coder",
    `  appliesTo: {agents: [allegro], taskClasses: [code]}
  models:
    - {model: claude, provider: anthropic, contextWindow: 200000, tools: true}
    - {model: gemini, provider: google, contextWindow: 1000000}
    - {model: gpt, provider: openai, contextWindow: 128000, tools: true}
  retries: {attempts: 2, backoff: 2s, maxRetryAfter: 60s}
  cooldown: {allowedFails: 3, window: 60s, duration: 5m}
  contextWindowFallbacks: [gemini]
  contentPolicyFallbacks: [gpt]`,
  ),
)[0] as Portfolio;
const plain = load(
  yaml(
    "plain",
    "  models:\n    - {model: a, provider: x, contextWindow: 1000}\n    - {model: b, provider: x, contextWindow: 500}\n    - {model: c, provider: x, contextWindow: 8000}\n  retries: {attempts: 0}",
  ),
)[0] as Portfolio;
const strict = load(
  yaml("strict", "  models:\n    - {model: a, provider: x}\n    - {model: b, provider: x}\n  fallbackOn: [rate_limit]"),
)[0] as Portfolio;

const T0 = Date.parse("2030-01-01T00:00:00Z");
const fails = (model: string, ...secs: number[]): HealthEvent[] =>
  secs.map((s) => ({ time: T0 + s * 1000, model, outcome: "rate_limit" }));

type Row = [string, Partial<NextModelInput> & { portfolio: Portfolio }, string];
// input → "model kind wait" or "exhausted: reason fragment"
const rows: Row[] = [
  ["starts with the primary", { portfolio: coder }, "claude primary 0"],
  [
    "retries the same model after a rate limit, with backoff",
    { portfolio: coder, attempt: 2, afterError: "rate_limit" },
    "claude retry 2000",
  ],
  [
    "doubles the backoff on the second retry",
    { portfolio: coder, attempt: 3, afterError: "rate_limit" },
    "claude retry 4000",
  ],
  ["falls back after the retries", { portfolio: coder, attempt: 4, afterError: "rate_limit" }, "gemini fallback 0"],
  ["goes down the whole chain", { portfolio: coder, attempt: 7, afterError: "timeout" }, "gpt fallback 0"],
  [
    "is exhausted after every model and retry",
    { portfolio: coder, attempt: 10, afterError: "server_error" },
    "exhausted: tried claude, gemini, gpt",
  ],
  [
    "does not retry an auth error: it moves on",
    { portfolio: coder, attempt: 2, afterError: "auth" },
    "gemini fallback 0",
  ],
  [
    "is exhausted by auth errors after each model once",
    { portfolio: coder, attempt: 4, afterError: "auth" },
    "exhausted",
  ],
  [
    "takes the context_window chain",
    { portfolio: coder, attempt: 2, afterError: "context_window" },
    "gemini special 0",
  ],
  ["ends the context_window chain", { portfolio: coder, attempt: 3, afterError: "context_window" }, "exhausted"],
  ["takes the content_policy chain", { portfolio: coder, attempt: 2, afterError: "content_policy" }, "gpt special 0"],
  [
    "without a special chain, context_window moves to a larger window only",
    { portfolio: plain, attempt: 2, afterError: "context_window" },
    "c fallback 0",
  ],
  [
    "without retries, a transient error moves on at once",
    { portfolio: plain, attempt: 2, afterError: "timeout" },
    "b fallback 0",
  ],
  [
    "does not fall back on an error outside fallbackOn",
    { portfolio: strict, attempt: 2, afterError: "auth" },
    "exhausted: (auth is not in fallbackOn)",
  ],
  [
    "still retries a transient error outside fallbackOn",
    { portfolio: strict, attempt: 2, afterError: "timeout" },
    "a retry 2000",
  ],
  [
    "moves on when the provider asks to wait too long",
    { portfolio: coder, attempt: 2, afterError: "rate_limit", retryAfterMs: 120_000 },
    "gemini fallback 0",
  ],
  [
    "waits what the provider asks when it is longer than the backoff",
    { portfolio: coder, attempt: 2, afterError: "rate_limit", retryAfterMs: 30_000 },
    "claude retry 30000",
  ],
  [
    "skips a model in cooldown",
    { portfolio: coder, health: fails("claude", 0, 10, 20), now: T0 + 60_000 },
    "gemini fallback 0",
  ],
  [
    "takes it back when the cooldown is over",
    { portfolio: coder, health: fails("claude", 0, 10, 20), now: T0 + 20_000 + 5 * 60_000 },
    "claude primary 0",
  ],
  [
    "does not cool down on failures spread wider than the window",
    { portfolio: coder, health: fails("claude", 0, 40, 80), now: T0 + 90_000 },
    "claude primary 0",
  ],
  ["skips models with too small a context window", { portfolio: coder, needsContext: 500_000 }, "gemini fallback 0"],
  ["skips models without tool use", { portfolio: plain, needsTools: true }, "exhausted: no model is eligible"],
  [
    "keeps tool-using models",
    { portfolio: coder, needsTools: true, attempt: 4, afterError: "rate_limit" },
    "gpt fallback 0",
  ],
];

describe("nextModel", () => {
  it.each(rows)("%s", (_name, input, expected) => {
    const r = nextModel({ now: T0, ...input });
    if (expected.startsWith("exhausted")) {
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.reason).toContain(expected.slice("exhausted: ".length));
    } else {
      expect(r.ok, r.ok ? "" : r.reason).toBe(true);
      if (r.ok) expect(`${r.model.model} ${r.kind} ${r.waitMs}`).toBe(expected);
    }
  });

  it("says why it skipped a model", () => {
    const r = nextModel({ portfolio: coder, health: fails("claude", 0, 10, 20), now: T0 + 60_000 });
    expect(r.ok && r.reason).toContain("skipped claude (in cooldown for 4m20s (3 failures within 1m))");
  });
});

describe("portfolio resolution", () => {
  const all = new Map(
    load(
      yaml("by-agent", "  appliesTo: {agents: [allegro]}\n  models: [{model: m1, provider: p}]") +
        "---\n" +
        yaml("by-class", "  appliesTo: {taskClasses: [code]}\n  models: [{model: m2, provider: p}]") +
        "---\n" +
        yaml("named", "  models: [{model: m3, provider: p}]") +
        "---\n" +
        yaml("default", "  models: [{model: m4, provider: p}]"),
    ).map((p) => [p.name, p]),
  );
  it.each([
    ["the member's own portfolio first", { agent: "allegro", portfolio: "named", taskClass: "code" }, "named member"],
    ["then appliesTo.agents", { agent: "allegro", taskClass: "code" }, "by-agent agents"],
    ["then appliesTo.taskClasses", { agent: "ezra", taskClass: "code" }, "by-class taskClasses"],
    ["then default", { agent: "ezra", taskClass: "docs" }, "default default"],
  ])("takes %s", (_n, who, expected) => {
    const r = resolvePortfolio(all, who);
    expect(`${r?.portfolio.name} ${r?.selector}`).toBe(expected);
  });

  it("rejects two portfolios claiming the same agent or task class, naming both places", () => {
    const a = loadPortfolioText(
      "portfolios/a.yaml",
      yaml("one", "  appliesTo: {agents: [allegro], taskClasses: [code]}\n  models: [{model: m, provider: p}]"),
    );
    const b = loadPortfolioText(
      "portfolios/b.yaml",
      yaml("two", "  appliesTo: {agents: [allegro]}\n  models: [{model: m, provider: p}]"),
    );
    const c = loadPortfolioText(
      "portfolios/c.yaml",
      yaml("three", "  appliesTo: {taskClasses: [code]}\n  models: [{model: m, provider: p}]"),
    );
    const { desired, diagnostics } = combine([], new Map(), [a, b, c]);
    const text = diagnostics.map(formatDiagnostic).join("\n");
    expect(text).toContain(
      'portfolios/b.yaml:4:9: error: metadata.name: agent allegro is also claimed by portfolio "one" at portfolios/a.yaml:4',
    );
    expect(text).toContain(
      'portfolios/a.yaml:4:9: error: metadata.name: agent allegro is also claimed by portfolio "two" at portfolios/b.yaml:4',
    );
    expect(text).toContain('task class code is also claimed by portfolio "one"');
    expect(desired.portfoliosHeld).toBe(true);
  });

  it("rejects a member naming a missing portfolio at its line, and quarantines its cell's file", () => {
    const cell = loadFileText(
      "cells.d/c.yaml",
      cellYaml({ name: "c", members: [{ identity: "agent:allegro", command: ["x"] }] }).replace(
        "      command:",
        "      portfolio: nope\n      command:",
      ),
    );
    const p = loadPortfolioText("portfolios/d.yaml", yaml("default", "  models: [{model: m, provider: p}]"));
    const { desired, diagnostics } = combine([cell], new Map(), [p]);
    expect(diagnostics.map(formatDiagnostic)).toEqual([
      'cells.d/c.yaml:9:7: error: spec.members[0].portfolio: portfolio "nope" is not declared in portfolios/ (declare it, or name one of: default)',
    ]);
    expect(desired.quarantined.map((q) => q.file)).toEqual(["cells.d/c.yaml"]);
  });

  it("rejects a special chain naming a model the portfolio does not have", () => {
    const r = loadPortfolioText(
      "portfolios/p.yaml",
      yaml("x", "  models: [{model: m, provider: p}]\n  contextWindowFallbacks: [other]"),
    );
    expect(r.diagnostics.map(formatDiagnostic)[0]).toContain(
      'spec.contextWindowFallbacks[0]: model "other" is not in spec.models',
    );
  });

  it("takes a model's price per million tokens, and refuses a negative one at its line", () => {
    const ok = loadPortfolioText(
      "portfolios/p.yaml",
      yaml("x", "  models: [{model: m, provider: p, price: {input: 3, output: 15}}]"),
    );
    expect(ok.diagnostics).toEqual([]);
    expect(ok.portfolios[0]?.models[0]?.price).toEqual({ input: 3, output: 15 });
    const bad = loadPortfolioText(
      "portfolios/p.yaml",
      yaml("x", "  models:\n    - model: m\n      provider: p\n      price: {input: -1, output: 15}"),
    );
    expect(bad.diagnostics.map(formatDiagnostic)[0]).toMatch(
      /portfolios\/p\.yaml:\d+:\d+: error: spec\.models\[0\]\.price\.input/,
    );
  });
});

describe("the legacy import", () => {
  const legacyText = `
agents:
  allegro:
    primary: {model: claude-opus, provider: anthropic}
    fallbacks: [{model: gpt-4o, provider: openai}]
  ezra:
    primary: {model: kimi-k2, provider: moonshot}
role_classes:
  code:
    primary: {model: qwen-coder, provider: alibaba}
    fallbacks: [{model: claude-sonnet, provider: anthropic}]
  review:
    primary: {model: gemini-pro, provider: google}
`;
  // The seed's get_model_for_task: agent first, then the role class, then gemini-1.5-flash.
  const legacy = {
    agents: { allegro: "claude-opus", ezra: "kimi-k2" } as Record<string, string>,
    classes: { code: "qwen-coder", review: "gemini-pro" } as Record<string, string>,
  };
  const seed = (taskClass: string, agent?: string) =>
    (agent && legacy.agents[agent]) || legacy.classes[taskClass] || "gemini-1.5-flash";

  it("resolves every agent and task class to the same model as the legacy code", () => {
    const { yaml: out } = importLegacy(legacyText);
    const ports = new Map(loadPortfolioText("portfolios/imported.yaml", out).portfolios.map((p) => [p.name, p]));
    for (const agent of ["allegro", "ezra", "timmy"]) {
      for (const taskClass of ["code", "review", "docs"]) {
        const r = resolvePortfolio(ports, { agent, taskClass });
        expect(r?.portfolio.models[0]?.model, `${agent}/${taskClass}`).toBe(seed(taskClass, agent));
      }
    }
    expect(resolvePortfolio(ports, { agent: "allegro" })?.portfolio.models.map((m) => m.model)).toEqual([
      "claude-opus",
      "gpt-4o",
    ]);
  });
});

describe("the package export", () => {
  it("offers nextModel as lazarus/portfolio", async () => {
    const { execa } = await import("execa");
    const script =
      "import { nextModel, resolvePortfolio, reportOutcome, readHealth } from 'lazarus/portfolio'; console.log([nextModel, resolvePortfolio, reportOutcome, readHealth].map((f) => typeof f).join(','))";
    const r = await execa("node", ["--input-type=module", "-e", script], {
      cwd: new URL("../..", import.meta.url).pathname,
    });
    expect(r.stdout).toBe("function,function,function,function");
  });
});
