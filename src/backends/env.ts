// The member environment (invariant I2): an allowlist of the host's variables plus the cell's own.
import path from "node:path";
import type { StartSpec } from "./backend.js";
import { recentlyComputed } from "../util/memo.js";

// Host variables that carry no identity or secret. Everything else stays out.
export const ALLOWED = new Set(["PATH", "LANG", "LANGUAGE", "TZ", "TERM", "USER", "LOGNAME", "SHELL"]);
export const ALLOWED_PREFIX = "LC_";

// The host's allowed variables, read again at most once a second (reading process.env whole costs
// a call into the runtime per variable, and an apply starts members by the thousand).
const recentAllowed = recentlyComputed<NodeJS.ProcessEnv, Record<string, string>>(1000, 16);
function allowedHostEnv(host: NodeJS.ProcessEnv): Record<string, string> {
  return recentAllowed(host, () => {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(host)) {
      if (v !== undefined && (ALLOWED.has(k) || k.startsWith(ALLOWED_PREFIX))) env[k] = v;
    }
    return env;
  });
}

export function memberEnv(spec: StartSpec, host: NodeJS.ProcessEnv): Record<string, string> {
  const env: Record<string, string> = { ...allowedHostEnv(host) };
  env.PATH ??= "/usr/local/bin:/usr/bin:/bin";
  if (spec.venv) {
    env.PATH = `${path.join(spec.venv, "bin")}:${env.PATH}`;
    env.VIRTUAL_ENV = spec.venv;
  }
  return {
    ...env,
    ...spec.env,
    CELL_ID: spec.cell,
    CELL_HOME: spec.cellDir,
    CELL_MEMBER: spec.identity,
    CELL_ROLE: spec.role,
    CELL_CREDENTIALS: spec.credentialsFile,
    HOME: spec.home,
    HERMES_HOME: path.join(spec.home, ".hermes"),
    TMPDIR: path.join(spec.home, ".tmp"),
    LAZARUS_SPAWN_ID: spec.spawnId,
    LAZARUS_EXIT_FILE: spec.exitFile,
    ...(spec.portfolioFile ? { LAZARUS_PORTFOLIO: spec.portfolioFile } : {}),
    ...(spec.gateway ? gatewayEnv(spec.gateway) : {}),
  };
}

// What the official SDKs read: the model gateway as their base URL, the member's token as their
// key (the provider's key stays with the gateway).
export function gatewayEnv(g: { token: string; port: number }): Record<string, string> {
  return {
    OPENAI_BASE_URL: `http://127.0.0.1:${g.port}/v1`,
    ANTHROPIC_BASE_URL: `http://127.0.0.1:${g.port}`,
    OPENAI_API_KEY: g.token,
    ANTHROPIC_API_KEY: g.token,
  };
}
