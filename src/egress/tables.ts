// The operator's tables that add entries to a cell's egress list by themselves: where model
// providers live (well-known defaults, and LAZARUS_PROVIDERS for others) and which forge a
// project is on (LAZARUS_FORGES). Both are the operator's files, never a cell's: a committer
// cannot make a provider "live" at a host of their choice. Egress reads only the hosts.
import { readFileSync, statSync } from "node:fs";
import { parse } from "yaml";
import { LazarusError, errorMessage } from "../util/errors.js";
import { DEFAULT_PORTS, parseEntry, type EgressEntry } from "./allow.js";
import { forgeTable as forgeRows, projectMatches } from "../forge/table.js";

// API hosts of well-known providers (a provider named in a portfolio's models).
export const WELL_KNOWN_PROVIDERS: Readonly<Record<string, string>> = {
  anthropic: "api.anthropic.com",
  openai: "api.openai.com",
  google: "generativelanguage.googleapis.com",
  gemini: "generativelanguage.googleapis.com",
  mistral: "api.mistral.ai",
  groq: "api.groq.com",
  deepseek: "api.deepseek.com",
  openrouter: "openrouter.ai",
  xai: "api.x.ai",
  cohere: "api.cohere.com",
  together: "api.together.xyz",
};

export interface ProviderRow {
  name: string;
  api?: "openai" | "anthropic"; // the HTTP API it speaks (the model gateway's business)
  baseUrl?: string;
  keyFile?: string; // under the secrets root (the model gateway's business)
}

export interface ForgeRow {
  match: string; // a project prefix or pattern: "Org/", "Org/repo", "Org/*", "*"
  url: string;
}

// The entry a URL's host and port make (its scheme's port when it names none).
export function urlEntry(url: string): EgressEntry | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  const p = parseEntry(u.hostname);
  if (!p.ok) return undefined;
  const port = u.port ? Number(u.port) : u.protocol === "http:" ? 80 : u.protocol === "https:" ? 443 : undefined;
  return { host: p.value.host, ports: port === undefined ? [...DEFAULT_PORTS] : [port] };
}

// A small YAML table file of the operator's, re-read when its mtime changes.
const cache = new Map<string, { mtimeMs: number; rows: unknown[] }>();
function readTable(variable: string, file: string | undefined, key: string): unknown[] {
  if (!file) return [];
  let mtimeMs: number;
  try {
    mtimeMs = statSync(file).mtimeMs;
  } catch (err) {
    throw new LazarusError("BAD_SETTING", `${variable} ${file}: ${errorMessage(err)}`);
  }
  const hit = cache.get(file);
  if (hit?.mtimeMs === mtimeMs) return hit.rows;
  let rows: unknown;
  try {
    rows = (parse(readFileSync(file, "utf8")) as Record<string, unknown> | null)?.[key];
  } catch (err) {
    throw new LazarusError("BAD_SETTING", `${variable} ${file}: not YAML (${errorMessage(err)})`);
  }
  if (!Array.isArray(rows))
    throw new LazarusError("BAD_SETTING", `${variable} ${file}: needs a list "${key}:" of entries`);
  cache.set(file, { mtimeMs, rows });
  return rows;
}

// LAZARUS_PROVIDERS: `providers: [{name, api, baseUrl, keyFile}]`.
export function providerTable(env: NodeJS.ProcessEnv = process.env): ProviderRow[] {
  return readTable("LAZARUS_PROVIDERS", env.LAZARUS_PROVIDERS, "providers").map((r, i) => providerRow(r, i, env));
}

function providerRow(r: unknown, i: number, env: NodeJS.ProcessEnv): ProviderRow {
  const row = (r ?? {}) as { name?: unknown; api?: unknown; baseUrl?: unknown; keyFile?: unknown };
  const bad = (what: string): never => {
    throw new LazarusError("BAD_SETTING", `LAZARUS_PROVIDERS ${env.LAZARUS_PROVIDERS}: providers[${i}]${what}`);
  };
  if (typeof row.name !== "string") bad(" has no name");
  if (row.baseUrl !== undefined && (typeof row.baseUrl !== "string" || !urlEntry(row.baseUrl))) {
    bad(".baseUrl is not an http(s) URL with a host name");
  }
  if (row.api !== undefined && row.api !== "openai" && row.api !== "anthropic")
    bad(".api is neither openai nor anthropic");
  const keyFile = row.keyFile;
  if (
    keyFile !== undefined &&
    (typeof keyFile !== "string" || !keyFile || keyFile.startsWith("/") || keyFile.split("/").includes(".."))
  ) {
    bad(".keyFile must be a path relative to the secrets root, without ..");
  }
  return {
    name: row.name as string,
    ...(row.api ? { api: row.api as "openai" | "anthropic" } : {}),
    ...(typeof row.baseUrl === "string" ? { baseUrl: row.baseUrl } : {}),
    ...(typeof keyFile === "string" ? { keyFile } : {}),
  };
}

// LAZARUS_FORGES: `forges: [{match, kind, url, tokenFile}]` (parsed in src/forge/table.ts; only
// match and url are used here).
export function forgeTable(env: NodeJS.ProcessEnv = process.env): ForgeRow[] {
  return forgeRows(env).map((f) => ({ match: f.match, url: f.url }));
}

export { projectMatches };
