// Stable digests of desired state, for change detection without storing values.
import { createHash } from "node:crypto";
import type { CredentialSource, DesiredCell, Resources } from "./types.js";

// JSON with sorted keys, so reordering a YAML mapping changes nothing. Byte for byte what
// JSON.stringify gives with a replacer that sorts every object's keys (code-unit order; as in any
// object, keys that are array indices come first, in numeric order), written out directly: the
// digests recorded in cell records and the ledger depend on it (test/config/digest.test.ts).
export function canonicalJson(value: unknown): string {
  return canon(value, "") as string;
}

const INDEX_KEY = /^(?:0|[1-9]\d*)$/;
const isIndex = (k: string): boolean => {
  const c = k.charCodeAt(0);
  return c >= 48 && c <= 57 && INDEX_KEY.test(k) && Number(k) < 4294967295;
};
const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
// Quoted keys, remembered: the same few field names recur in every cell.
const quoted = new Map<string, string>();
const quote = (k: string): string => {
  let q = quoted.get(k);
  if (q === undefined) {
    q = JSON.stringify(k);
    if (quoted.size < 4096) quoted.set(k, q);
  }
  return q;
};

// undefined: the value is left out (as JSON.stringify leaves out undefined, functions, symbols).
function canon(value: unknown, key: string): string | undefined {
  let v = value;
  if (v !== null && (typeof v === "object" || typeof v === "bigint") && typeof (v as { toJSON?: unknown }).toJSON === "function") v = (v as { toJSON(k: string): unknown }).toJSON(key);
  switch (typeof v) {
    case "string":
      return JSON.stringify(v);
    case "number":
    case "boolean":
    case "bigint": // throws, as JSON.stringify does
      return JSON.stringify(v);
    case "object": {
      if (v === null) return "null";
      if (Array.isArray(v)) {
        let out = "[";
        for (let i = 0; i < v.length; i++) out += `${i > 0 ? "," : ""}${canon(v[i], String(i)) ?? "null"}`;
        return `${out}]`;
      }
      let keys = Object.keys(v).sort(byCodeUnit);
      if (keys.some(isIndex)) keys = [...keys.filter(isIndex).sort((a, b) => Number(a) - Number(b)), ...keys.filter((k) => !isIndex(k))];
      let out = "{";
      for (const k of keys) {
        const item = canon((v as Record<string, unknown>)[k], k);
        if (item === undefined) continue;
        out += `${out.length > 1 ? "," : ""}${quote(k)}:${item}`;
      }
      return `${out}}`;
    }
    default:
      return undefined;
  }
}

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

// A digest of where the credentials come from (file paths, variable names), never of their values.
export function credentialsDigest(credentials: Record<string, CredentialSource>): string {
  return sha256(canonicalJson(credentials)).slice(0, 16);
}

// Whether a member would run the same process: same command, env and limits (key order aside).
type ProcessSpec = { command?: string[] | undefined; env: Record<string, string>; resources?: Resources | undefined };
export function sameProcessSpec(a: ProcessSpec, b: ProcessSpec): boolean {
  return canonicalJson(a.command ?? null) === canonicalJson(b.command ?? null) && canonicalJson(a.env) === canonicalJson(b.env) && canonicalJson(a.resources ?? {}) === canonicalJson(b.resources ?? {});
}

// A digest of one cell's declaration, blind to where it is written (file, line, key order).
export function desiredDigest(d: DesiredCell): string {
  const { source: _source, members, credentialsAt: _at, kubeconfigAt: _kat, credentialsValueDigest: _values, python, ...rest } = d;
  // The resolved portfolio comes from portfolios/, not from the cell's declaration. A python
  // runtime counts by its paths and the digest of the files' contents, not by where it is written.
  const py = python ? { python: { requirements: python.requirements, findLinks: python.findLinks, digest: python.digest } } : {};
  return sha256(canonicalJson({ ...rest, ...py, members: members.map(({ source: _s, commandSource: _c, resolvedPortfolio: _p, ...m }) => m) })).slice(0, 16);
}
