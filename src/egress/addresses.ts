// Which resolved addresses the proxy may connect to. Checked on the address a name resolves to at
// connect time (the proxy connects to exactly that address, so a name that re-resolves elsewhere
// later — DNS rebinding — gains nothing). Never: loopback, link-local (the cloud metadata service
// at 169.254.169.254 and fd00:ec2::254), the host's own addresses, private, shared, multicast and
// reserved ranges — unless the operator's LAZARUS_EGRESS_CIDRS names the address (an internal
// forge). The metadata addresses stay refused even inside LAZARUS_EGRESS_CIDRS.
import { BlockList, SocketAddress, isIP } from "node:net";
import { networkInterfaces } from "node:os";

// Ranges no public service lives in (IANA special-purpose registries).
const V4_NOT_PUBLIC = [
  ["0.0.0.0", 8, "unspecified"],
  ["10.0.0.0", 8, "private"],
  ["100.64.0.0", 10, "shared (CGNAT)"],
  ["127.0.0.0", 8, "loopback"],
  ["169.254.0.0", 16, "link-local"],
  ["172.16.0.0", 12, "private"],
  ["192.0.0.0", 24, "reserved"],
  ["192.0.2.0", 24, "documentation"],
  ["192.168.0.0", 16, "private"],
  ["198.18.0.0", 15, "benchmarking"],
  ["198.51.100.0", 24, "documentation"],
  ["203.0.113.0", 24, "documentation"],
  ["224.0.0.0", 4, "multicast"],
  ["240.0.0.0", 4, "reserved"],
] as const;
const V6_NOT_PUBLIC = [
  ["::", 128, "unspecified"],
  ["::1", 128, "loopback"],
  ["fe80::", 10, "link-local"],
  ["fc00::", 7, "private (unique local)"],
  ["ff00::", 8, "multicast"],
  ["64:ff9b::", 96, "NAT64"],
  ["64:ff9b:1::", 48, "NAT64"],
  ["100::", 64, "discard"],
  ["2001:db8::", 32, "documentation"],
  ["2001::", 23, "reserved"],
  ["2002::", 16, "6to4"],
  ["::", 96, "IPv4-compatible"],
] as const;
export const METADATA = ["169.254.169.254", "fd00:ec2::254"] as const;

export interface AddressPolicy {
  cidrs: { address: string; prefix: number }[]; // LAZARUS_EGRESS_CIDRS
  ownAddresses?: string[]; // the host's own addresses (default: read from its interfaces)
}

export type Verdict = { ok: true } | { ok: false; reason: string };

// An IPv6 address in its one canonical spelling, and an IPv4-mapped one (::ffff:10.0.0.1, however
// written: ::ffff:a00:1, 0:0:0:0:0:FFFF:10.0.0.1) as the IPv4 address it is; the ranges below are
// checked by family, so a mapped address left as IPv6 would be checked against none of the IPv4
// ranges. Anything else is returned as it is.
export function unmapped(address: string): string {
  if (isIP(address) !== 6) return address;
  const canonical = new SocketAddress({ address, family: "ipv6" }).address;
  return /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(canonical)?.[1] ?? canonical;
}

const family = (a: string): "ipv4" | "ipv6" => (isIP(a) === 4 ? "ipv4" : "ipv6");

// One BlockList per range, made once (not per connection).
const NOT_PUBLIC = [
  ...V4_NOT_PUBLIC.map(([net, prefix, why]) => ({ fam: "ipv4" as const, net, prefix, why })),
  ...V6_NOT_PUBLIC.map(([net, prefix, why]) => ({ fam: "ipv6" as const, net, prefix, why })),
].map((r) => {
  const list = new BlockList();
  list.addSubnet(r.net, r.prefix, r.fam);
  return { fam: r.fam, list, why: r.why };
});

function reasonIn(address: string): string | undefined {
  const fam = family(address);
  return NOT_PUBLIC.find((r) => r.fam === fam && r.list.check(address, fam))?.why;
}

// The host's own addresses, every interface's.
export function hostAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((l) =>
    (l ?? []).map((i) => unmapped(i.address.replace(/%.*$/, ""))),
  );
}

// Builds the check for one policy; the returned function is called per connection.
export function addressCheck(policy: AddressPolicy): (address: string) => Verdict {
  const allowed = new BlockList();
  for (const c of policy.cidrs) allowed.addSubnet(unmapped(c.address), c.prefix, family(unmapped(c.address)));
  // a BlockList, not a set of strings: an address written another way (0:0:0:0:0:ffff:…, upper
  // case, zeros spelled out) is still the host's own
  const own = new BlockList();
  for (const a of (policy.ownAddresses ?? hostAddresses()).map(unmapped)) if (isIP(a)) own.addAddress(a, family(a));
  const metadata = new BlockList();
  for (const m of METADATA) metadata.addAddress(m, family(m));
  return (raw: string): Verdict => {
    const address = unmapped(raw.replace(/%.*$/, "")).toLowerCase();
    if (!isIP(address)) return { ok: false, reason: `${raw} is not an address` };
    const fam = family(address);
    if (metadata.check(address, fam)) return { ok: false, reason: `${address} is the cloud metadata address` };
    if (allowed.check(address, fam)) return { ok: true };
    if (own.check(address, fam)) return { ok: false, reason: `${address} is one of this host's own addresses` };
    const why = reasonIn(address);
    return why ? { ok: false, reason: `${address} is ${why} (outside LAZARUS_EGRESS_CIDRS)` } : { ok: true };
  };
}

// LAZARUS_EGRESS_CIDRS: comma-separated CIDRs (a bare address is a /32 or /128).
export function parseCidrs(
  text: string | undefined,
): { ok: true; value: { address: string; prefix: number }[] } | { ok: false; error: string } {
  const out: { address: string; prefix: number }[] = [];
  for (const part of (text ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [address = "", prefixText] = part.split("/");
    const v = isIP(address);
    const max = v === 4 ? 32 : 128;
    const prefix = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : Number.NaN;
    if (!v || !(prefix >= 0 && prefix <= max))
      return { ok: false, error: `"${part}" is not an address range such as 10.1.2.0/24 or 127.0.0.1/32` };
    out.push({ address, prefix });
  }
  return { ok: true, value: out };
}
