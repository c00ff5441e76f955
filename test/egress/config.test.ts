// network: {egress: [...]} in a cell file, through the real CLI: each entry checked at its line
// against the operator's bound, the automatic entries (model providers of the members' portfolios,
// the project's forge) shown by plan with where they come from.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cleanup, configDir, lazarus, tempDir } from "../helpers.js";

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));

const cell = (network: string, backend = "sandbox"): string =>
  [
    "apiVersion: lazarus/v1",
    "kind: Cell",
    "metadata: {name: eg}",
    "spec:",
    "  project: Org/repo#3",
    "  owner: human:tester",
    `  backend: ${backend}`,
    `  network: ${network}`,
    "  members:",
    "    - identity: agent:coder",
    "      role: executor",
    '      command: ["sleep", "600"]',
    "",
  ].join("\n");

const PORTFOLIO = [
  "apiVersion: lazarus/v1",
  "kind: Portfolio",
  "metadata: {name: default}",
  "spec:",
  "  models:",
  "    - {model: claude-sonnet-4, provider: anthropic}",
  "    - {model: local-llama, provider: homelab}",
  "",
].join("\n");

function setup(network: string, backend?: string): { cfg: string; state: string } {
  const cfg = configDir({ "cells.d/eg.yaml": cell(network, backend), "portfolios/default.yaml": PORTFOLIO });
  const state = tempDir("lazarus-egress-state-");
  dirs.push(cfg, state);
  return { cfg, state };
}

describe("network egress in cells.d", () => {
  it("an entry outside LAZARUS_EGRESS_ALLOW is an error at its own line, and the cell is held", async () => {
    const { cfg, state } = setup('{egress: [api.example.org, "*.github.com:443",\n      evil.example.net]}');
    const r = await lazarus(["validate", "-c", cfg, "-s", state], {
      env: { LAZARUS_EGRESS_ALLOW: "api.example.org,*.github.com" },
    });
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(
      /cells\.d\/eg\.yaml:9:\d+.*spec\.network\.egress\[2\].*evil\.example\.net is outside what this host allows/s,
    );
    expect(r.stdout + r.stderr).not.toMatch(/egress\[0\]|egress\[1\]/);
  });

  it("an IP address is an error that says to name a host", async () => {
    const { cfg, state } = setup("{egress: [169.254.169.254]}");
    const r = await lazarus(["validate", "-c", cfg, "-s", state]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/spec\.network\.egress\[0\].*IP address; name a host/s);
  });

  it("egress on a backend without a network namespace of its own is an error", async () => {
    const { cfg, state } = setup("{egress: [api.example.org]}", "process");
    const r = await lazarus(["validate", "-c", cfg, "-s", state]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/needs backend sandbox/);
  });

  it("plan shows the providers' API hosts and the project's forge as automatic entries", async () => {
    const { cfg, state } = setup("{egress: [pypi.org, files.pythonhosted.org]}");
    const tables = tempDir("lazarus-egress-tables-");
    dirs.push(tables);
    writeFileSync(
      path.join(tables, "providers.yaml"),
      "providers:\n  - {name: homelab, api: openai, baseUrl: 'https://llm.lab.example:8443/v1', keyFile: homelab.key}\n",
    );
    writeFileSync(
      path.join(tables, "forges.yaml"),
      "forges:\n  - {match: 'Other/*', kind: gitea, url: 'https://other.example'}\n  - {match: 'Org/*', kind: gitea, url: 'https://gitea.example.org', tokenFile: gitea.token}\n",
    );
    const r = await lazarus(["plan", "-c", cfg, "-s", state], {
      env: { LAZARUS_PROVIDERS: path.join(tables, "providers.yaml"), LAZARUS_FORGES: path.join(tables, "forges.yaml") },
    });
    expect(r.stdout).toContain(
      "network egress (pypi.org, files.pythonhosted.org; automatic: api.anthropic.com:443 for provider anthropic, llm.lab.example:8443 for provider homelab, gitea.example.org:443 for forge of Org/repo)",
    );
  });

  it("a provider with no known host is a warning, not a silent gap", async () => {
    const { cfg, state } = setup("{egress: [pypi.org]}");
    const r = await lazarus(["plan", "-c", cfg, "-s", state]);
    expect(r.stdout + r.stderr).toMatch(/provider homelab of its portfolio has no known API host/);
    expect(r.stdout).toContain("automatic: api.anthropic.com:443 for provider anthropic)");
  });

  it("a broken operator table holds the cell, with the file named", async () => {
    const { cfg, state } = setup("{egress: [pypi.org]}");
    const bad = path.join(tempDir("lazarus-egress-bad-"), "providers.yaml");
    dirs.push(path.dirname(bad));
    writeFileSync(bad, "providers: {name: x}\n");
    const r = await lazarus(["plan", "-c", cfg, "-s", state], { env: { LAZARUS_PROVIDERS: bad } });
    expect(r.stdout + r.stderr).toMatch(/LAZARUS_PROVIDERS .*providers\.yaml: needs a list "providers:"/);
    expect(r.stdout).not.toMatch(/\+ create/);
  });

  it("a kubernetes cell keeps its deny-all NetworkPolicy and carries the whole list for the operator's egress proxy", async () => {
    const k8s = cell("{egress: [pypi.org]}", "kubernetes").replace(
      "  members:",
      "  kubernetes: {namespace: agents, image: registry.example/agent:1}\n  members:",
    );
    const cfg = configDir({ "cells.d/eg.yaml": k8s, "portfolios/default.yaml": PORTFOLIO });
    dirs.push(cfg);
    const r = await lazarus(["render", "--config", cfg, "--json", "eg"]);
    expect(r.exitCode, r.stderr).toBe(0);
    const policy = (
      JSON.parse(r.stdout) as {
        kind: string;
        metadata: { annotations?: Record<string, string> };
        spec: { egress: unknown[] };
      }[]
    ).find((o) => o.kind === "NetworkPolicy");
    expect(policy?.spec.egress).toEqual([]);
    expect(policy?.metadata.annotations?.["lazarus.dev/egress-allow"]).toBe("api.anthropic.com:443,pypi.org");
  });
});
