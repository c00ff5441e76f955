// Where each provider the gateway brokers lives, which API it speaks and which key it takes: the
// operator's LAZARUS_PROVIDERS table over the defaults of well-known providers. Never a cell's.
import { providerTable, WELL_KNOWN_PROVIDERS } from "../egress/tables.js";
import type { ApiName } from "./apis.js";

export interface GatewayProvider {
  name: string;
  api: ApiName;
  baseUrl: string; // without a trailing slash
  keyFile: string; // relative to the secrets root
}

// Public base URLs of well-known providers, in the form each one's official SDK uses. Their hosts
// are the ones egress adds for them (WELL_KNOWN_PROVIDERS): a test keeps the two in step.
export const WELL_KNOWN_APIS: Readonly<Record<string, { api: ApiName; baseUrl: string }>> = {
  openai: { api: "openai", baseUrl: "https://api.openai.com/v1" },
  anthropic: { api: "anthropic", baseUrl: "https://api.anthropic.com" },
  groq: { api: "openai", baseUrl: "https://api.groq.com/openai/v1" },
  deepseek: { api: "openai", baseUrl: "https://api.deepseek.com/v1" },
  mistral: { api: "openai", baseUrl: "https://api.mistral.ai/v1" },
  openrouter: { api: "openai", baseUrl: "https://openrouter.ai/api/v1" },
  xai: { api: "openai", baseUrl: "https://api.x.ai/v1" },
  together: { api: "openai", baseUrl: "https://api.together.xyz/v1" },
  google: { api: "openai", baseUrl: "https://generativelanguage.googleapis.com/v1beta/openai" },
  gemini: { api: "openai", baseUrl: "https://generativelanguage.googleapis.com/v1beta/openai" },
};

export { WELL_KNOWN_PROVIDERS };

// The providers the gateway can broker, by name: a row of the operator's table completes (or
// overrides) a well-known default; a name with neither an API nor a base URL is not brokered.
export function gatewayProviders(env: NodeJS.ProcessEnv = process.env): Map<string, GatewayProvider> {
  const out = new Map<string, GatewayProvider>();
  for (const [name, d] of Object.entries(WELL_KNOWN_APIS)) out.set(name, { name, ...d, keyFile: `${name}/key` });
  for (const row of providerTable(env)) {
    const d = out.get(row.name);
    const api = row.api ?? d?.api;
    const baseUrl = row.baseUrl ?? d?.baseUrl;
    if (!api || !baseUrl) {
      out.delete(row.name);
      continue;
    }
    out.set(row.name, {
      name: row.name,
      api,
      baseUrl: baseUrl.replace(/\/+$/, ""),
      keyFile: row.keyFile ?? `${row.name}/key`,
    });
  }
  return out;
}
