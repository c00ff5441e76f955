// Stable digests of desired state, for change detection without storing values.
import { hash } from "node:crypto";
import type { CredentialSource, DesiredCell } from "./types.js";

// JSON with sorted keys, so reordering a YAML mapping changes nothing. Byte for byte what
// JSON.stringify gives with a replacer that sorts every object's keys (code-unit order; as in any
// object, keys that are array indices come first, in numeric order): the digests recorded in cell
// records and the ledger depend on it (test/config/digest.test.ts). Built as a copy whose objects
// hold their keys in that order, then written by JSON.stringify itself (which the copy's shared
// shapes make fast): several times quicker than writing the text out by hand.
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortedCopy(value, "")) as string;
}

// What JSON.stringify leaves out of an object (and writes as null in an array).
const omitted = (v: unknown): boolean => v === undefined || typeof v === "function" || typeof v === "symbol";

// value with toJSON applied (as JSON.stringify would, with the same key) and every object's keys
// inserted in code-unit order; an object's omitted values are dropped and an array's become null,
// so the copy holds no function and JSON.stringify calls no toJSON of its own on it.
function sortedCopy(value: unknown, key: string): unknown {
  let v = value;
  if (
    v !== null &&
    (typeof v === "object" || typeof v === "bigint") &&
    typeof (v as { toJSON?: unknown }).toJSON === "function"
  )
    v = (v as { toJSON(k: string): unknown }).toJSON(key);
  if (typeof v !== "object" || v === null) return v;
  if (Array.isArray(v)) {
    const out: unknown[] = new Array<unknown>(v.length);
    for (let i = 0; i < v.length; i++) {
      const item = sortedCopy(v[i], String(i));
      out[i] = omitted(item) ? null : item;
    }
    return out;
  }
  const o = v as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of sortedKeys(o)) {
    const item = sortedCopy(o[k], k);
    if (omitted(item)) continue;
    if (k === "__proto__")
      Object.defineProperty(out, k, { value: item, enumerable: true, writable: true, configurable: true });
    else out[k] = item;
  }
  return out;
}

// The keys of o in code-unit order. A plan digests thousands of cells whose objects have the same
// few sets of keys in the same order: the order found for a set is kept (a few per key count) and
// given again when the same keys come in the same order, instead of sorting them each time.
const sortedByKeys = new Map<number, { keys: string[]; sorted: string[] }[]>();
function sortedKeys(o: object): readonly string[] {
  const keys = Object.keys(o);
  if (keys.length < 2) return keys;
  let seen = sortedByKeys.get(keys.length);
  if (seen) for (const s of seen) if (sameOrder(s.keys, keys)) return s.sorted;
  const sorted = [...keys].sort(); // code-unit order
  if (!seen) sortedByKeys.set(keys.length, (seen = []));
  if (seen.length < 16) seen.push({ keys, sorted });
  return sorted;
}

const sameOrder = (a: readonly string[], b: readonly string[]): boolean => {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
};

export function sha256(text: string): string {
  return hash("sha256", text, "hex"); // one call, no Hash object: a plan digests thousands of cells
}

// A digest of where the credentials come from (file paths, variable names), never of their values.
export function credentialsDigest(credentials: Record<string, CredentialSource>): string {
  return sha256(canonicalJson(credentials)).slice(0, 16);
}

// A digest of one cell's declaration, blind to where it is written (file, line, key order): the
// cell without its positions and credential values, its python runtime by paths and digest, its
// members without positions or resolved portfolio. Built field by field rather than by object rest
// (same value, test/config/digest.test.ts): a plan outside git digests every cell of the fleet.
const CELL_LEFT_OUT = new Set([
  "source",
  "members",
  "credentialsAt",
  "kubeconfigAt",
  "credentialsValueDigest",
  "python",
  "gateway",
]);
const MEMBER_LEFT_OUT = new Set(["source", "commandSource", "resolvedPortfolio"]);
function without(o: object, leftOut: ReadonlySet<string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o)) if (!leftOut.has(k)) out[k] = (o as Record<string, unknown>)[k];
  return out;
}
export function desiredDigest(d: DesiredCell): string {
  const value = without(d, CELL_LEFT_OUT);
  const { python } = d;
  // The resolved portfolio comes from portfolios/, not from the cell's declaration. A python
  // runtime counts by its paths and the digest of the files' contents, not by where it is written.
  if (python) value.python = { requirements: python.requirements, findLinks: python.findLinks, digest: python.digest };
  value.members = d.members.map((m) => without(m, MEMBER_LEFT_OUT));
  return sha256(canonicalJson(value)).slice(0, 16);
}
