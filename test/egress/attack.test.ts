// The egress proxy attacked as a hostile member would: CONNECT targets and absolute URLs spelled to
// slip past the list (numeric IPv4, mapped IPv6, zone ids, userinfo, look-alikes, odd ports), names
// the operator maps to addresses no member may reach, pipelined and smuggled plain-HTTP requests,
// SOCKS5, and a flood of connections to its own door. The proxy's own server (proxyServer) listens
// on 127.0.0.1 here, so most of this runs without root; the door's connection cap is tried through
// a real door in a network namespace (root).
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addressCheck } from "../../src/egress/addresses.js";
import { parseBound, parseEntry, withinBound, type EgressEntry } from "../../src/egress/allow.js";
import { proxyServer, type EgressEvent, type ProxyPolicy } from "../../src/egress/proxy.js";
import { EgressService } from "../../src/egress/service.js";
import { MEMBER_PORT, writeCellFile, writeSettingsFile } from "../../src/egress/state.js";
import { DOOR_MAX_CONNECTIONS } from "../../src/bridge/doors.js";
import { ensureNetns, memberNetnsFile, removeNetns } from "../../src/bridge/netns.js";
import { cleanup, tempDir, waitFor } from "../helpers.js";
import { connectVia, floodDoor, netnsSkipReason } from "./helpers.js";

const entries = (...t: string[]): EgressEntry[] =>
  t.map((x) => {
    const p = parseEntry(x);
    if (!p.ok) throw new Error(p.error);
    return p.value;
  });

// A public address standing in for one of the host's own (never connected to: it is refused).
const OWN = "93.184.216.34";

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}
const seen: Seen[] = [];
const events: EgressEvent[] = [];
let upstream: http.Server;
let P: number; // the upstream's port: the only one the list names
let proxy: http.Server;
let proxyPort: number;

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString("latin1")));
    req.on("end", () => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      res.end(`up ${req.url}\n`);
    });
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  P = (upstream.address() as net.AddressInfo).port;
  const hosts = new Map<string, string[]>([
    ["forge.test", ["127.0.0.1"]],
    ["x.wild.test", ["127.0.0.1"]],
    ["zero.bad.test", ["0.0.0.0"]],
    ["any6.bad.test", ["::"]],
    ["mapped.bad.test", ["::ffff:127.0.0.2"]],
    ["expanded.bad.test", ["0:0:0:0:0:ffff:7f00:2"]],
    ["cgnat.bad.test", ["100.64.1.1"]],
    ["mcast.bad.test", ["224.0.0.251"]],
    ["mcast6.bad.test", ["ff02::fb"]],
    ["meta.bad.test", ["0:0:0:0:0:FFFF:A9FE:A9FE"]],
    ["own.bad.test", [OWN]],
    ["own-expanded.bad.test", ["0:0:0:0:0:ffff:5db8:d822"]],
    ["own6.bad.test", ["2606:2800:220:1:0:0:0:1"]],
  ]);
  const policy: ProxyPolicy = {
    entries: [
      ...entries(`forge.test:${P}`, `*.wild.test:${P}`, `*.bad.test:${P}`),
      // numeric names as a cell file written before parseEntry refused them would hold them
      { host: "0x7f.1", ports: [P] },
      { host: "0x7f000001", ports: [P] },
    ],
    // the operator opened 127.0.0.1 for an internal forge, and nothing else
    check: addressCheck({ cidrs: [{ address: "127.0.0.1", prefix: 32 }], ownAddresses: [OWN, "2606:2800:220:1::1"] }),
    hosts,
  };
  proxy = proxyServer(
    { cell: "c1", member: "agent:a" },
    () => policy,
    (e) => events.push(e),
  );
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  proxyPort = (proxy.address() as net.AddressInfo).port;
});

afterAll(() => {
  proxy?.closeAllConnections();
  proxy?.close();
  upstream?.closeAllConnections();
  upstream?.close();
});

// Send raw bytes to the proxy; everything it answers until it closes, or until ms passed.
function raw(bytes: string | Buffer, ms = 800): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(proxyPort, "127.0.0.1");
    let out = "";
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(out);
    };
    const timer = setTimeout(done, ms);
    s.on("data", (d: Buffer) => (out += d.toString("latin1")));
    s.on("close", done);
    s.on("error", done);
    s.write(bytes);
  });
}

// The status codes of every response in a reply, in order.
const statuses = (reply: string): number[] => [...reply.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => Number(m[1]));

// A CONNECT request (PORT: the upstream's port, PROXY: the proxy's), spelled when a test runs.
const connect = (target: string, host = target): string =>
  `CONNECT ${target} HTTP/1.1\r\nHost: ${host}\r\n\r\n`
    .replace(/PORT/g, String(P))
    .replace(/PROXY/g, String(proxyPort));

describe("CONNECT targets spelled to slip past the list", () => {
  it.each([
    ["another name, with a listed Host header", ["evil.test:PORT", "forge.test:PORT"], 403, /not on the cell's list/],
    ["IPv4 as one decimal number", ["2130706433:PORT"], 403, /IP address/],
    ["IPv4 in hex parts", ["0x7f.1:PORT"], 403, /IP address/],
    ["IPv4 with a part left out", ["127.1:PORT"], 403, /IP address/],
    ["a listed numeric name (hex parts)", ["0x7f.1:PORT"], 403, /IP address/],
    ["a listed numeric name (one hex number)", ["0x7f000001:PORT"], 403, /IP address/],
    ["an IPv4-mapped IPv6 literal", ["[::ffff:127.0.0.1]:PORT"], 403, /IP address/],
    ["an IPv6 literal with a zone id", ["[fe80::1%25lo]:PORT"], 403, /IP address|not on the cell's list/],
    ["localhost", ["localhost:PORT"], 403, /not on the cell's list/],
    ["localhost with a trailing dot", ["localhost.:PORT"], 403, /not on the cell's list/],
    ["userinfo before a listed name", ["a@forge.test:PORT"], 403, /not on the cell's list/],
    ["a listed name as userinfo", ["forge.test@evil.test:PORT"], 403, /not on the cell's list/],
    ["a listed name as a prefix", ["forge.test.evil.test:PORT"], 403, /not on the cell's list/],
    ["a look-alike of a listed name", ["evilforge.test:PORT"], 403, /not on the cell's list/],
    ["a punycode look-alike", ["xn--frge-1ua.test:PORT"], 403, /not on the cell's list/],
    ["the domain of a wildcard itself", ["wild.test:PORT"], 403, /not on the cell's list/],
    ["a look-alike of a wildcard's domain", ["evilwild.test:PORT"], 403, /not on the cell's list/],
    ["a listed name on the proxy's own port", ["forge.test:PROXY"], 403, /not on the cell's list/],
    ["port 0", ["forge.test:0"], 400, /malformed/],
    ["port 65536", ["forge.test:65536"], 400, /malformed/],
    ["a port with letters", ["forge.test:443abc"], 400, /malformed/],
    ["no port", ["forge.test"], 400, /malformed/],
  ] as [string, [string, string?], number, RegExp][])("refuses %s", async (_what, [target, host], status, why) => {
    const n = seen.length;
    const before = events.length;
    const reply = await raw(connect(target, host));
    expect(statuses(reply)).toEqual([status]);
    await waitFor(() => events.length > before);
    expect(events.at(-1)).toMatchObject({ verdict: "refused" });
    expect(events.at(-1)?.reason).toMatch(why);
    expect(seen.length).toBe(n);
  });

  it("refuses a name outside the list written in another script (the request line is not ASCII)", async () => {
    const before = events.length;
    const reply = await raw(Buffer.from(connect("fоrge.test:PORT"), "utf8")); // a Cyrillic "о"
    expect(statuses(reply)[0] ?? 0).not.toBe(200);
    expect(events.slice(before).filter((e) => e.verdict === "allowed" && e.host !== "forge.test")).toEqual([]);
  });

  it.each([
    ["zero", "0.0.0.0", /unspecified/],
    ["any6", "::", /unspecified/],
    ["mapped", "::ffff:127.0.0.2", /loopback/],
    ["expanded", "an IPv4-mapped loopback spelled out", /loopback/],
    ["cgnat", "100.64/10", /CGNAT/],
    ["mcast", "IPv4 multicast", /multicast/],
    ["mcast6", "IPv6 multicast", /multicast/],
    ["meta", "the metadata address, mapped and upper case", /metadata/],
    ["own", "one of the host's own addresses", /own addresses/],
    ["own-expanded", "the host's own address, mapped and spelled out", /own addresses/],
    ["own6", "the host's own IPv6 address, zeros spelled out", /own addresses/],
  ])("refuses a listed name the operator's hosts file maps to %s (%s)", async (name, _what, why) => {
    const before = events.length;
    const reply = await raw(connect(`${name}.bad.test:PORT`));
    expect(statuses(reply)).toEqual([403]);
    await waitFor(() => events.length > before);
    expect(events.at(-1)?.reason).toMatch(why);
  });

  it.each([
    ["upper case", "FORGE.TEST:PORT"],
    ["a trailing dot", "forge.test.:PORT"],
    ["a wildcard's subdomain", "x.wild.test:PORT"],
  ])("lets a listed name through spelled with %s (it is the same host)", async (_what, target) => {
    const before = events.length;
    const reply = await raw(`${connect(target)}GET /t HTTP/1.1\r\nHost: forge.test\r\nConnection: close\r\n\r\n`);
    expect(statuses(reply)).toEqual([200, 200]);
    const host = target.replace(":PORT", "").toLowerCase().replace(/\.$/, "");
    await waitFor(() => events.slice(before).some((e) => e.verdict === "allowed" && e.host === host));
  });
});

describe("a cell file's entries", () => {
  it.each([
    ["*", /not a host name/],
    ["*.com", /not a host name/],
    ["*.*", /not a host name/],
    ["*:443", /not a host name/],
    ["1.2.3.4:443", /IP address/],
    ["::1", /IP address/],
    ["[::1]:443", /IP address/],
    ["127.1", /IP address/],
    ["2130706433", /IP address/],
    ["0x7f.1", /IP address/],
    ["0x7f000001:5432", /IP address/],
    ["*.0x7f.1", /not a host name/],
    ["github.com:0", /port 0/],
    ["github.com:65536", /port 65536/],
    ["github.com:443abc", /not a host name/],
    ["github.com:*", /name a port/],
    ["a@github.com", /not a host name/],
    ["github.com/x", /not a host name/],
    ["ɡithub.com", /not a host name/], // a Latin small script g
    ["-github.com", /not a host name/],
  ])("refuses %j", (text, why) => {
    const p = parseEntry(text);
    expect(p.ok).toBe(false);
    expect(p.ok || p.error).toMatch(why);
  });

  it.each([
    ["*.github.com", "github.com", false],
    ["*.github.com", "evilgithub.com", false],
    ["*.github.com", "github.com.evil.test", false],
    ["*.github.com", "*.api.github.com", true],
    ["api.github.com", "*.api.github.com", false],
    ["api.example.org:443", "api.example.org", false], // 80 too, outside the bound
    ["api.example.org:443", "api.example.org:443", true],
  ])("within LAZARUS_EGRESS_ALLOW=%s, %s is %s", (bound, text, within) => {
    const b = parseBound(bound);
    const e = parseEntry(text);
    if (!b.ok || !e.ok) throw new Error("unparsed");
    expect(withinBound(e.value, b.value)).toBe(within);
  });
});

describe("plain HTTP forwarding", () => {
  const get = (url: string, host = "forge.test"): string =>
    `GET ${url.replace(/PORT/g, String(P))} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;

  it.each([
    ["IPv4 as one decimal number", "http://2130706433:PORT/", 403],
    ["IPv4 in hex parts", "http://0x7f.1:PORT/", 403],
    ["an IPv4-mapped IPv6 literal", "http://[::ffff:127.0.0.1]:PORT/", 403],
    ["a listed name as userinfo", "http://forge.test:PORT@evil.test/", 403],
    ["localhost with a trailing dot", "http://localhost.:PORT/", 403],
    ["port 0", "http://forge.test:0/", 403],
    ["port 65536", "http://forge.test:65536/", 400],
    ["a port with letters", "http://forge.test:443abc/", 400],
    ["an https:// URL (that is CONNECT's)", "https://forge.test:PORT/", 400],
    ["a path without a host", "/x", 400],
  ])("refuses %s", async (_what, url, status) => {
    const n = seen.length;
    expect(statuses(await raw(get(url)))).toEqual([status]);
    expect(seen.length).toBe(n);
  });

  it("answers pipelined requests in order, each checked on its own URL, whatever its Host header says", async () => {
    const n = seen.length;
    const reply = await raw(
      [
        `GET http://forge.test:${P}/a HTTP/1.1\r\nHost: forge.test\r\n\r\n`,
        `GET http://evil.test/b HTTP/1.1\r\nHost: forge.test\r\n\r\n`,
        `GET http://forge.test:${P}/c HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n`,
      ].join(""),
      2000,
    );
    expect(statuses(reply)).toEqual([200, 403, 200]);
    expect(seen.slice(n).map((s) => [s.url, s.headers.host])).toEqual([
      ["/a", `forge.test:${P}`],
      ["/c", `forge.test:${P}`],
    ]);
  });

  it.each([
    ["Content-Length and Transfer-Encoding both", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"],
    ["two different Content-Lengths", "Content-Length: 3\r\nContent-Length: 30\r\n\r\nabc"],
    ["a header folded onto the next line", "X-A: a\r\n b\r\nContent-Length: 0\r\n\r\n"],
    ["a space before a header's colon", "Transfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc"],
    ["Transfer-Encoding identity with a Content-Length", "Transfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc"],
    ["a transfer coding that is not chunked", "Transfer-Encoding: xchunked\r\n\r\n"],
    ["chunked, then another coding", "Transfer-Encoding: chunked, gzip\r\n\r\n"],
  ])("forwards nothing of a request whose body framing is ambiguous: %s", async (_what, rest) => {
    const n = seen.length;
    const before = events.length;
    const smuggled = `GET http://forge.test:${P}/smuggled HTTP/1.1\r\nHost: evil.test\r\n\r\n`;
    const reply = await raw(`POST http://forge.test:${P}/p HTTP/1.1\r\nHost: forge.test\r\n${rest}${smuggled}`);
    expect(statuses(reply).filter((s) => s !== 400)).toEqual([]);
    await new Promise((r) => setTimeout(r, 100));
    expect(seen.slice(n)).toEqual([]);
    expect(events.slice(before).filter((e) => e.verdict === "allowed")).toEqual([]);
  });

  it("forwards nothing of a request with bare LF line ends", async () => {
    const n = seen.length;
    const reply = await raw(`GET http://forge.test:${P}/lf HTTP/1.1\nHost: forge.test\n\n`);
    expect(statuses(reply).filter((s) => s !== 400)).toEqual([]);
    expect(seen.slice(n)).toEqual([]);
  });

  it("passes a chunked body on as chunked, whole", async () => {
    const n = seen.length;
    const reply = await raw(
      `POST http://forge.test:${P}/c HTTP/1.1\r\nHost: forge.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    );
    expect(statuses(reply)).toEqual([200]);
    expect(seen.slice(n).map((s) => [s.url, s.body, s.headers["transfer-encoding"]])).toEqual([
      ["/c", "hello", "chunked"],
    ]);
  });

  it("drops the headers the member's Connection header names, and the proxy's own", async () => {
    const n = seen.length;
    await raw(
      `GET http://forge.test:${P}/h HTTP/1.1\r\nHost: forge.test\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n` +
        `Proxy-Authorization: Basic eDp5\r\nKeep-Alive: 5\r\nX-End: 2\r\n\r\n`,
    );
    const h = seen[n]?.headers;
    expect(h?.["x-end"]).toBe("2");
    expect(h?.["x-hop"]).toBeUndefined();
    expect(h?.["proxy-authorization"]).toBeUndefined();
    expect(h?.["keep-alive"]).toBeUndefined();
  });
});

describe("what the proxy does not speak", () => {
  it.each([
    ["a SOCKS5 greeting", Buffer.from([5, 1, 0])],
    ["a SOCKS4 connect to 127.0.0.1", Buffer.from([4, 1, 0, 80, 127, 0, 0, 1, 0])],
    ["TLS straight to the proxy", Buffer.from("160301002a0100002603", "hex")],
  ])("closes the connection at %s, reaching nothing", async (_what, bytes) => {
    const n = seen.length;
    const before = events.filter((e) => e.verdict === "allowed").length;
    const reply = await raw(bytes);
    expect(statuses(reply).filter((s) => s < 400)).toEqual([]);
    expect(seen.length).toBe(n);
    expect(events.filter((e) => e.verdict === "allowed").length).toBe(before);
  });
});

const skipReason = netnsSkipReason();
describe.skipIf(skipReason !== undefined)("a member flooding its own door", () => {
  let dir: string;
  let service: EgressService;
  const files: string[] = [];

  beforeAll(async () => {
    dir = tempDir("lazarus-egress-attack-");
    writeFileSync(path.join(dir, "hosts"), "127.0.0.1 forge.test\n");
    await writeSettingsFile(dir, { cidrs: [{ address: "127.0.0.1", prefix: 32 }], hostsFile: path.join(dir, "hosts") });
    for (const m of ["a", "b"]) {
      const f = memberNetnsFile(dir, "u1", m);
      await ensureNetns(f);
      files.push(f);
    }
    service = new EgressService(dir);
    await writeCellFile(dir, {
      formatVersion: 1,
      cell: "c1",
      uid: "u1",
      entries: entries(`forge.test:${P}`),
      members: ["a", "b"].map((m, i) => ({ identity: `agent:${m}`, home: m, netns: files[i] as string })),
    });
    await service.reload();
  });

  afterAll(async () => {
    await service?.close();
    for (const f of files) await removeNetns(f);
    if (dir) cleanup(dir);
  });

  it("holds at most its cap of connections; the rest are dropped at once, and a teammate is still served", async () => {
    const flood = await floodDoor(files[0] as string, MEMBER_PORT, DOOR_MAX_CONNECTIONS + 40);
    try {
      expect(flood.result).toEqual({ open: DOOR_MAX_CONNECTIONS + 40, closed: 40 });
      const c = await connectVia(files[1] as string, `forge.test:${P}`);
      c.socket.destroy();
      expect(c.status).toBe(200);
    } finally {
      flood.stop();
    }
  });
});
