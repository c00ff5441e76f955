// Egress allowlists (spec I4 "unless explicitly proxied"): which host names and ports a cell's
// members may reach through its proxy. Pure: no I/O, no DNS. An entry is a host name
// (api.anthropic.com) or a wildcard over its subdomains (*.github.com), with an optional port
// (gitea.example.org:3000); without one it allows 443 and 80. IP literals are never entries: a
// member names what it reaches, and the proxy resolves the name (see addresses.ts).
import { isIP } from "node:net";

export const DEFAULT_PORTS: readonly number[] = [443, 80];

export interface EgressEntry {
  host: string; // lower case, no trailing dot; "*.example.org" for a wildcard
  ports: number[]; // sorted; DEFAULT_PORTS when the entry names none
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

// Whether a name is an IPv4 address in disguise: its last label a number, decimal or hex (0x7f.1,
// 0x7f000001, 127.1). The resolver (inet_aton) and URL parsers read such a name as an address.
export function numericName(host: string): boolean {
  const last = normalHost(host).split(".").at(-1) ?? "";
  return /^(\d+|0x[0-9a-f]*)$/i.test(last);
}

// Whether text is a DNS host name of at least two labels (or a single label, e.g. an internal
// name from the operator's hosts file), each a letter-digit-hyphen label, and not an address.
function isHostName(text: string): boolean {
  if (text.length === 0 || text.length > 253) return false;
  return text.split(".").every((l) => LABEL.test(l)) && !numericName(text);
}

// A host name as the proxy compares it: lower case, without a trailing dot.
export function normalHost(host: string): string {
  const h = host.trim().toLowerCase();
  return h.endsWith(".") ? h.slice(0, -1) : h;
}

// One entry of a cell's list (or of the operator's bound, where "*" may stand for any port).
export function parseEntry(
  text: string,
  opts: { anyPort?: boolean } = {},
): Parsed<EgressEntry & { anyPort?: boolean }> {
  const raw = text.trim();
  const bare = raw.replace(/:(\d+|\*)$/, "");
  if (raw.startsWith("[") || isIP(raw) || isIP(bare) || (!bare.startsWith("*.") && numericName(bare)))
    return {
      ok: false,
      error: `"${text}" is an IP address; name a host (the proxy resolves names, and never lets a member choose an address)`,
    };
  const m = /^([^:]+)(?::(\*|\d{1,5}))?$/.exec(raw);
  if (!m)
    return {
      ok: false,
      error: `"${text}" is not a host name with an optional port, such as api.example.org or *.example.org:443`,
    };
  const host = normalHost(m[1] as string);
  const wildcard = host.startsWith("*.");
  const name = wildcard ? host.slice(2) : host;
  if (!isHostName(name) || (wildcard && !name.includes(".")))
    return {
      ok: false,
      error: `"${text}" is not a host name such as api.example.org or a wildcard such as *.example.org`,
    };
  if (m[2] === "*") {
    if (!opts.anyPort) return { ok: false, error: `"${text}": name a port (or none for 443 and 80)` };
    return { ok: true, value: { host, ports: [], anyPort: true } };
  }
  if (m[2] === undefined) return { ok: true, value: { host, ports: [...DEFAULT_PORTS].sort((a, b) => a - b) } };
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return { ok: false, error: `"${text}": port ${port} is not from 1 to 65535` };
  return { ok: true, value: { host, ports: [port] } };
}

// Whether a pattern (an entry's host) covers a host name: equal, or a wildcard over one of its
// subdomains (*.github.com covers api.github.com and a.b.github.com, not github.com itself).
export function hostMatches(pattern: string, host: string): boolean {
  const h = normalHost(host);
  if (!pattern.startsWith("*.")) return pattern === h;
  return h.endsWith(pattern.slice(1)) && h.length > pattern.length - 1;
}

// The entry of a list that lets a member reach host:port, if any.
export function allowedBy(entries: readonly EgressEntry[], host: string, port: number): EgressEntry | undefined {
  return entries.find((e) => e.ports.includes(port) && hostMatches(e.host, host));
}

// An operator's bound pattern (LAZARUS_EGRESS_ALLOW): an entry whose port may be "*"; without a
// port it bounds to any port (the bound says which hosts, cells' entries say which ports).
export interface BoundPattern {
  host: string;
  ports: number[] | "any";
}

// Whether every host:port an entry allows lies inside one of the bound's patterns.
export function withinBound(entry: EgressEntry, bound: readonly BoundPattern[] | undefined): boolean {
  if (bound === undefined) return true;
  return bound.some((b) => {
    const portsOk = b.ports === "any" || entry.ports.every((p) => (b.ports as number[]).includes(p));
    if (!portsOk) return false;
    if (!entry.host.startsWith("*.")) return hostMatches(b.host, entry.host);
    // A wildcard entry fits only a wildcard at or above it: *.a.example.org inside *.example.org.
    return b.host.startsWith("*.") && (entry.host === b.host || entry.host.endsWith(b.host.slice(1)));
  });
}

// The operator's bound from LAZARUS_EGRESS_ALLOW (comma-separated); undefined: any host name.
export function parseBound(text: string | undefined): Parsed<BoundPattern[] | undefined> {
  if (text === undefined || text.trim() === "") return { ok: true, value: undefined };
  const out: BoundPattern[] = [];
  for (const part of text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const p = parseEntry(part, { anyPort: true });
    if (!p.ok) return p;
    out.push({ host: p.value.host, ports: p.value.anyPort || !/:\d+$/.test(part) ? "any" : p.value.ports });
  }
  return { ok: true, value: out };
}

// The text of an entry as plan and events show it.
export function entryText(e: EgressEntry): string {
  const defaults = e.ports.length === DEFAULT_PORTS.length && DEFAULT_PORTS.every((p) => e.ports.includes(p));
  return defaults ? e.host : `${e.host}:${e.ports.join(",")}`;
}

// One list from several (cell's own and automatic), each host:ports once, in a stable order.
export function mergeEntries(lists: readonly (readonly EgressEntry[])[]): EgressEntry[] {
  const byHost = new Map<string, Set<number>>();
  for (const e of lists.flat()) {
    const ports = byHost.get(e.host) ?? new Set<number>();
    for (const p of e.ports) ports.add(p);
    byHost.set(e.host, ports);
  }
  return [...byHost]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([host, ports]) => ({ host, ports: [...ports].sort((a, b) => a - b) }));
}

// A cell's whole list in force: its declared and automatic entries merged.
export function egressList(e: {
  entries: readonly EgressEntry[];
  auto: readonly { entry: EgressEntry }[];
}): EgressEntry[] {
  return mergeEntries([e.entries, e.auto.map((a) => a.entry)]);
}

// The list in force as text, as plan and render show it.
export function egressTexts(e: { entries: readonly EgressEntry[]; auto: readonly { entry: EgressEntry }[] }): string[] {
  return egressList(e).map(entryText);
}
