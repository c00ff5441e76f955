// Stable digests of desired state, for change detection without storing values.
import { createHash } from "node:crypto";
import type { CredentialSource, DesiredCell, Resources } from "./types.js";

// JSON with sorted keys, so reordering a YAML mapping changes nothing.
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
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
  const { source: _source, members, credentialsAt: _at, credentialsValueDigest: _values, python, ...rest } = d;
  // The resolved portfolio comes from portfolios/, not from the cell's declaration. A python
  // runtime counts by its paths and the digest of the files' contents, not by where it is written.
  const py = python ? { python: { requirements: python.requirements, findLinks: python.findLinks, digest: python.digest } } : {};
  return sha256(canonicalJson({ ...rest, ...py, members: members.map(({ source: _s, commandSource: _c, resolvedPortfolio: _p, ...m }) => m) })).slice(0, 16);
}
