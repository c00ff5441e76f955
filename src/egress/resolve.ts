// Name resolution for the proxy: the operator's hosts file (LAZARUS_EGRESS_HOSTS, hosts(5)
// format) first, for internal names, then the host's resolver. Members have no resolver of their
// own: every name they reach is resolved here, outside the cell.
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { normalHost } from "./allow.js";

export type HostsTable = ReadonlyMap<string, readonly string[]>;

// hosts(5): "ADDRESS NAME [ALIAS...]" per line, "#" starts a comment. Lines that are not of that
// form are reported by number, never guessed at.
export function parseHosts(text: string): { table: Map<string, string[]>; errors: string[] } {
  const table = new Map<string, string[]>();
  const errors: string[] = [];
  text.split("\n").forEach((line, i) => {
    const words = (line.split("#")[0] ?? "").trim().split(/\s+/).filter(Boolean);
    if (words.length === 0) return;
    const [address = "", ...names] = words;
    if (!isIP(address) || names.length === 0) {
      errors.push(`line ${i + 1}: "${line.trim()}" is not "ADDRESS NAME [ALIAS...]"`);
      return;
    }
    for (const n of names) table.set(normalHost(n), [...(table.get(normalHost(n)) ?? []), address]);
  });
  return { table, errors };
}

// Every address a name resolves to, hosts file first.
export async function resolveName(host: string, hosts: HostsTable): Promise<string[]> {
  const fromFile = hosts.get(normalHost(host));
  if (fromFile?.length) return [...fromFile];
  const found = await lookup(host, { all: true, verbatim: true });
  return found.map((a) => a.address);
}
