// Where the gateway sends each provider's calls: the operator's table over well-known defaults.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { WELL_KNOWN_APIS, WELL_KNOWN_PROVIDERS, gatewayProviders } from "../../src/gateway/providers.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "lz-providers-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function table(name: string, text: string): NodeJS.ProcessEnv {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return { LAZARUS_PROVIDERS: file };
}

describe("gateway providers", () => {
  it("sends each well-known provider's calls to the host egress opens for it", () => {
    for (const [name, d] of Object.entries(WELL_KNOWN_APIS))
      expect([name, new URL(d.baseUrl).hostname]).toEqual([name, WELL_KNOWN_PROVIDERS[name]]);
  });

  it("lets the operator's table add a provider and override a default's key file", () => {
    const p = gatewayProviders(
      table(
        "ok.yaml",
        "providers:\n  - {name: inhouse, api: openai, baseUrl: 'https://llm.example.org/v1/', keyFile: inhouse/token}\n  - {name: openai, keyFile: team/openai}\n",
      ),
    );
    expect(p.get("inhouse")).toEqual({
      name: "inhouse",
      api: "openai",
      baseUrl: "https://llm.example.org/v1",
      keyFile: "inhouse/token",
    });
    expect(p.get("openai")).toEqual({
      name: "openai",
      api: "openai",
      baseUrl: "https://api.openai.com/v1",
      keyFile: "team/openai",
    });
    expect(p.get("anthropic")?.keyFile).toBe("anthropic/key");
  });

  it("refuses a key file outside the secrets root and an API it does not speak", () => {
    expect(() =>
      gatewayProviders(
        table(
          "up.yaml",
          "providers:\n  - {name: x, api: openai, baseUrl: 'https://x.example.org', keyFile: ../etc/shadow}\n",
        ),
      ),
    ).toThrow(/providers\[0\]\.keyFile must be a path relative to the secrets root/);
    expect(() =>
      gatewayProviders(table("api.yaml", "providers:\n  - {name: x, api: gemini, baseUrl: 'https://x.example.org'}\n")),
    ).toThrow(/providers\[0\]\.api is neither openai nor anthropic/);
  });
});
