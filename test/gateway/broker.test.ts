// Which members the model gateway serves and where they call it, asked of the backend contract
// (never a backend's name), and which credentials it keeps out of a cell.
import { describe, expect, it } from "vitest";
import { brokeredCredentials, brokeredModels, gatewayReachOf, providerKeyFiles } from "../../src/gateway/broker.js";
import { memberPort } from "../../src/gateway/cells.js";
import { gatewayProviders } from "../../src/gateway/providers.js";
import { GATEWAY_MEMBER_PORT } from "../../src/gateway/state.js";
import { gatewayEnv } from "../../src/backends/env.js";

describe("the model gateway's reach", () => {
  it("is the host's loopback for members on the host's network, the bridge's port in a namespace", () => {
    expect(gatewayReachOf("process", {}, {})).toBe("host");
    expect(gatewayReachOf("sandbox", { network: "none" }, {})).toBe("namespace");
    expect(gatewayReachOf("sandbox", { network: "egress" }, {})).toBe("namespace");
    expect(gatewayReachOf("container", { network: "host" }, {})).toBe("host");
    expect(gatewayReachOf("remote", {}, {})).toBeUndefined(); // another machine
    expect(gatewayReachOf("kubernetes", {}, {})).toBeUndefined();
    expect(gatewayReachOf("process", {}, { LAZARUS_GATEWAY: "off" })).toBeUndefined();
    expect(memberPort("host", 41234)).toBe(41234);
    expect(memberPort("namespace", 41234)).toBe(GATEWAY_MEMBER_PORT);
    expect(GATEWAY_MEMBER_PORT).toBe(4000);
  });

  it("gives the SDKs their base URLs and the token as both keys", () => {
    expect(gatewayEnv({ token: "lzg-x", port: 4000 })).toEqual({
      OPENAI_BASE_URL: "http://127.0.0.1:4000/v1",
      ANTHROPIC_BASE_URL: "http://127.0.0.1:4000",
      OPENAI_API_KEY: "lzg-x",
      ANTHROPIC_API_KEY: "lzg-x",
    });
  });
});

describe("brokered credentials", () => {
  const providers = gatewayProviders({});
  it("are the file credentials that name a brokered provider's key file", () => {
    expect(
      brokeredCredentials(
        {
          OPENAI_KEY: { file: "openai/key" },
          CLAUDE: { file: "./anthropic/key" },
          GITEA: { file: "gitea/token" },
          FROM_ENV: { env: "LAZARUS_SECRET_OPENAI" },
        },
        providerKeyFiles(providers),
      ),
    ).toEqual(["CLAUDE", "OPENAI_KEY"]);
  });

  it("serve a portfolio only through the models of brokered providers", () => {
    const doc = {
      models: [
        { model: "claude-sonnet-4", provider: "anthropic" },
        { model: "local-llama", provider: "ollama-on-my-desk" },
      ],
    };
    expect(brokeredModels(doc, providers)).toEqual(["claude-sonnet-4"]);
    expect(brokeredModels({ models: [{ model: "x", provider: "nobody" }] }, providers)).toEqual([]);
  });
});
