import { describe, expect, it } from "vitest";
import { allowedBy, parseBound, parseEntry, withinBound, type EgressEntry } from "../../src/egress/allow.js";
import { addressCheck, parseCidrs } from "../../src/egress/addresses.js";
import { parseHosts } from "../../src/egress/resolve.js";

const entry = (t: string): EgressEntry => {
  const p = parseEntry(t);
  if (!p.ok) throw new Error(p.error);
  return p.value;
};

describe("egress entries", () => {
  it("a host name without a port allows 443 and 80; with one, only that port", () => {
    expect(entry("API.Anthropic.com.")).toEqual({ host: "api.anthropic.com", ports: [80, 443] });
    expect(entry("gitea.example.org:3000")).toEqual({ host: "gitea.example.org", ports: [3000] });
  });

  it.each([
    "10.0.0.1",
    "10.0.0.1:443",
    "[::1]:443",
    "::1",
    "169.254.169.254",
    "exa mple.org",
    "*.com.",
    "*",
    "a:99999",
    "-bad.org",
    "http://x.org",
  ])("refuses %s as an entry", (t) => {
    expect(parseEntry(t).ok).toBe(false);
  });

  it("an IP address is refused with a reason that says to name a host", () => {
    const p = parseEntry("169.254.169.254");
    expect(p.ok || p.error).toMatch(/IP address; name a host/);
  });

  it("a wildcard covers subdomains at any depth, never the bare domain or a look-alike", () => {
    const list = [entry("*.github.com:443")];
    expect(allowedBy(list, "api.github.com", 443)).toBeDefined();
    expect(allowedBy(list, "a.b.github.com", 443)).toBeDefined();
    expect(allowedBy(list, "github.com", 443)).toBeUndefined();
    expect(allowedBy(list, "evilgithub.com", 443)).toBeUndefined();
    expect(allowedBy(list, "api.github.com", 80)).toBeUndefined();
    expect(allowedBy(list, "api.github.com.evil.org", 443)).toBeUndefined();
  });
});

describe("the operator's bound (LAZARUS_EGRESS_ALLOW)", () => {
  const bound = (t: string) => {
    const p = parseBound(t);
    if (!p.ok) throw new Error(p.error);
    return p.value;
  };

  it("unset allows every name; set, only entries inside it", () => {
    expect(withinBound(entry("anything.example.org"), bound(""))).toBe(true);
    const b = bound("api.anthropic.com,*.github.com:443");
    expect(withinBound(entry("api.anthropic.com"), b)).toBe(true);
    expect(withinBound(entry("api.anthropic.com:8443"), b)).toBe(true); // no port in the bound: any port
    expect(withinBound(entry("codeload.github.com:443"), b)).toBe(true);
    expect(withinBound(entry("*.api.github.com:443"), b)).toBe(true);
    expect(withinBound(entry("*.github.com"), b)).toBe(false); // port 80 is outside
    expect(withinBound(entry("*.githubusercontent.com:443"), b)).toBe(false);
    expect(parseEntry("*.com").ok).toBe(false); // a wildcard over a whole top-level domain
    expect(withinBound(entry("github.com:443"), b)).toBe(false);
    expect(withinBound(entry("pypi.org"), b)).toBe(false);
  });

  it("a malformed bound is an error", () => {
    expect(parseBound("10.0.0.0").ok).toBe(false);
  });
});

describe("addresses the proxy connects to", () => {
  const check = addressCheck({ cidrs: [], ownAddresses: ["192.0.2.7", "2001:db8::7", "203.0.114.9"] });
  it.each([
    ["127.0.0.1", /loopback/],
    ["127.1.2.3", /loopback/],
    ["::1", /loopback/],
    ["::ffff:127.0.0.1", /loopback/],
    ["::ffff:7f00:1", /loopback/],
    ["169.254.169.254", /metadata/],
    ["fd00:ec2::254", /metadata/],
    ["::ffff:169.254.169.254", /metadata/],
    ["169.254.1.1", /link-local/],
    ["fe80::1", /link-local/],
    ["10.1.2.3", /private/],
    ["172.20.0.1", /private/],
    ["192.168.1.1", /private/],
    ["fc00::1", /private/],
    ["100.64.0.1", /CGNAT/],
    ["0.0.0.0", /unspecified/],
    ["::", /unspecified/],
    ["224.0.0.1", /multicast/],
    ["203.0.114.9", /this host's own/],
  ])("refuses %s", (a, why) => {
    const v = check(a);
    expect(v.ok).toBe(false);
    expect(v.ok || v.reason).toMatch(why);
  });

  it.each(["93.184.216.34", "2606:4700::1111", "::ffff:1.1.1.1"])("allows the public address %s", (a) => {
    expect(check(a)).toEqual({ ok: true });
  });

  it("LAZARUS_EGRESS_CIDRS opens private and loopback addresses, never the metadata address", () => {
    const cidrs = parseCidrs("127.0.0.1/32,10.20.0.0/16,169.254.0.0/16");
    if (!cidrs.ok) throw new Error(cidrs.error);
    const c = addressCheck({ cidrs: cidrs.value, ownAddresses: [] });
    expect(c("127.0.0.1")).toEqual({ ok: true });
    expect(c("::ffff:127.0.0.1")).toEqual({ ok: true });
    expect(c("127.0.0.2").ok).toBe(false);
    expect(c("10.20.3.4")).toEqual({ ok: true });
    expect(c("10.21.3.4").ok).toBe(false);
    expect(c("169.254.169.254").ok).toBe(false);
  });

  it("a malformed CIDR is an error", () => {
    expect(parseCidrs("10.0.0.0/33").ok).toBe(false);
    expect(parseCidrs("forge.internal").ok).toBe(false);
  });
});

describe("the operator's hosts file", () => {
  it("maps every name and alias of a line; a bad line is reported by number", () => {
    const h = parseHosts("# internal\n10.1.2.3 forge.internal git.internal # the forge\n\nnot-an-address foo\n");
    expect(h.table.get("git.internal")).toEqual(["10.1.2.3"]);
    expect(h.errors).toEqual([expect.stringMatching(/^line 4:/)]);
  });
});
