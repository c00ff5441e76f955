// The egress proxy for one member: an HTTP proxy (CONNECT tunnels and plain-HTTP forwarding) that
// lets a request through only when its host name and port are on the cell's list and the address
// the name resolves to now passes the address check; it connects to exactly that address. One
// event per attempt: member, host, port, verdict and why, bytes each way, duration.
import http from "node:http";
import net, { isIP } from "node:net";
import type { Duplex } from "node:stream";
import { allowedBy, entryText, normalHost, numericName, type EgressEntry } from "./allow.js";
import type { Verdict } from "./addresses.js";
import { resolveName, type HostsTable } from "./resolve.js";
import type { Splicer } from "./splicer.js";

export interface EgressEvent {
  time: string;
  cell: string;
  member: string;
  kind: "connect" | "http";
  host: string;
  port: number;
  verdict: "allowed" | "refused";
  reason: string;
  address?: string;
  bytesUp: number; // member → host
  bytesDown: number; // host → member
  durationMs: number;
}

// What the proxy decides from, read afresh for every request (so a changed list applies at once).
export interface ProxyPolicy {
  entries: readonly EgressEntry[];
  check: (address: string) => Verdict;
  hosts: HostsTable;
}

export interface ProxyMember {
  cell: string;
  member: string;
}

const CONNECT_TIMEOUT_MS = 10_000;
const ESTABLISHED = "HTTP/1.1 200 Connection Established\r\n\r\n";
export const SPLICE_AFTER = 1 << 20; // bytes a tunnel moves in node before the splicer takes it
const HOP_HEADERS = ["proxy-connection", "proxy-authorization", "connection", "keep-alive", "te", "trailer", "upgrade"];

const FRAMING = ["host", "content-length", "transfer-encoding"]; // never dropped because Connection names them

type Decision = { ok: true; address: string; reason: string } | { ok: false; reason: string };

// Whether host:port may be reached, and at which address.
export async function decide(policy: ProxyPolicy | undefined, host: string, port: number): Promise<Decision> {
  if (!policy) return { ok: false, reason: "the cell has no egress list (closed or changed to network none)" };
  if (isIP(host.replace(/^\[|\]$/g, "")) || numericName(host))
    return { ok: false, reason: "an IP address, not a host name (names only)" };
  const entry = allowedBy(policy.entries, host, port);
  if (!entry) return { ok: false, reason: `${normalHost(host)}:${port} is not on the cell's list` };
  let addresses: string[];
  try {
    addresses = await resolveName(host, policy.hosts);
  } catch (err) {
    return { ok: false, reason: `${host} does not resolve (${(err as NodeJS.ErrnoException).code ?? "error"})` };
  }
  const verdicts = addresses.map((a) => ({ a, v: policy.check(a) }));
  const good = verdicts.find((x) => x.v.ok);
  if (good) return { ok: true, address: good.a, reason: `allowed by ${entryText(entry)}` };
  const bad = verdicts[0]?.v;
  return { ok: false, reason: bad && !bad.ok ? `${host} resolves to ${bad.reason}` : `${host} has no address` };
}

// An allowed attempt whose host did not answer stays allowed (the policy let it through); the
// reason says what failed.
function failed(d: Decision, failure: string | undefined): Decision {
  return failure && d.ok ? { ...d, reason: `${d.reason}; connection failed: ${failure}` } : d;
}

// "host:port" of a CONNECT request (IPv6 literals in brackets).
function target(authority: string): { host: string; port: number } | undefined {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(authority);
  if (!m) return undefined;
  const port = Number(m[2]);
  return port >= 1 && port <= 65535 ? { host: m[1] as string, port } : undefined;
}

function refuse(client: Duplex, status: number, reason: string): void {
  const text = `${reason}\n`;
  client.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nX-Lazarus-Egress: refused\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}

// An HTTP server to listen on the member's socket.
// With a splicer, an allowed tunnel's bytes are moved by it (see splicer.ts), not by node.
export function proxyServer(
  who: ProxyMember,
  policy: () => ProxyPolicy | undefined,
  onEvent: (e: EgressEvent) => void,
  splicer?: Splicer,
): http.Server {
  const server = http.createServer({ requestTimeout: 0 });
  server.on("connect", (req: http.IncomingMessage, client: Duplex, head: Buffer) => {
    void tunnel(who, policy(), req, client as net.Socket, head, onEvent, splicer);
  });
  server.on("request", (req, res) => {
    void forward(who, policy(), req, res, onEvent);
  });
  server.on("clientError", (_err, socket: Duplex) => socket.destroy());
  return server;
}

function event(
  who: ProxyMember,
  kind: EgressEvent["kind"],
  host: string,
  port: number,
  d: Decision,
  started: number,
  bytes = { up: 0, down: 0 },
): EgressEvent {
  return {
    time: new Date(started).toISOString(),
    cell: who.cell,
    member: who.member,
    kind,
    host: normalHost(host),
    port,
    verdict: d.ok ? "allowed" : "refused",
    reason: d.reason,
    ...(d.ok ? { address: d.address } : {}),
    bytesUp: bytes.up,
    bytesDown: bytes.down,
    durationMs: Date.now() - started,
  };
}

async function tunnel(
  who: ProxyMember,
  policy: ProxyPolicy | undefined,
  req: http.IncomingMessage,
  client: net.Socket,
  head: Buffer,
  onEvent: (e: EgressEvent) => void,
  splicer?: Splicer,
): Promise<void> {
  const started = Date.now();
  client.on("error", () => client.destroy());
  const t = target(req.url ?? "");
  if (!t) {
    refuse(client, 400, `CONNECT needs host:port, not "${req.url}"`);
    return onEvent(event(who, "connect", req.url ?? "", 0, { ok: false, reason: "malformed CONNECT target" }, started));
  }
  const d = await decide(policy, t.host, t.port);
  if (!d.ok) {
    refuse(client, 403, d.reason);
    return onEvent(event(who, "connect", t.host, t.port, d, started));
  }
  const upstream = net.connect({ host: d.address, port: t.port, timeout: CONNECT_TIMEOUT_MS });
  let done = false;
  const finish = (failure?: string): void => {
    if (done) return;
    done = true;
    client.destroy();
    upstream.destroy();
    onEvent(
      event(who, "connect", t.host, t.port, failed(d, failure), started, {
        up: upstream.bytesWritten,
        down: upstream.bytesRead,
      }),
    );
  };
  upstream.once("timeout", () =>
    upstream.connecting
      ? (refuse(client, 504, `${t.host}:${t.port} did not answer`),
        finish(`${t.host}:${t.port} (${d.address}) did not answer`))
      : undefined,
  );
  upstream.once("connect", () => {
    upstream.setTimeout(0);
    upstream.setNoDelay(true);
    client.write(ESTABLISHED);
    if (head.length) upstream.write(head);
    client.pipe(upstream);
    upstream.pipe(client);
    if (splicer)
      handOverWhenBulky(client, upstream, splicer, (bytes) => {
        done = true;
        void bytes.then((b) => onEvent(event(who, "connect", t.host, t.port, d, started, b)));
      });
  });
  upstream.once("error", (err: NodeJS.ErrnoException) => {
    if (upstream.bytesRead === 0 && !client.destroyed && upstream.connecting)
      refuse(client, 502, `${t.host}:${t.port}: ${err.code ?? err.message}`);
    finish(upstream.connecting ? `${t.host}:${t.port} (${d.address}): ${err.code ?? err.message}` : undefined);
  });
  upstream.once("close", () => finish());
  client.once("close", () => finish());
}

// Once a tunnel moved SPLICE_AFTER bytes, the splicer takes it over (node's copy is the slow part
// of a bulk transfer; a short connection never pays the hand-over). When it took it, node lets go
// of both descriptors without ending either connection, and onHanded gets the tunnel's bytes each
// way (node's and the splicer's), settled when the tunnel ends.
function handOverWhenBulky(
  client: net.Socket,
  upstream: net.Socket,
  splicer: Splicer,
  onHanded: (bytes: Promise<{ up: number; down: number }>) => void,
): void {
  let moved = 0;
  const count = (c: Buffer): void => {
    moved += c.length;
    if (moved < SPLICE_AFTER) return;
    client.off("data", count);
    upstream.off("data", count);
    client.unpipe(upstream);
    upstream.unpipe(client);
    client.pause();
    upstream.pause();
    void splicer.hand(client, upstream).then((h) => {
      if (!h) {
        client.pipe(upstream);
        upstream.pipe(client);
        return;
      }
      const before = { up: upstream.bytesWritten, down: upstream.bytesRead };
      for (const s of [client, upstream]) {
        s.removeAllListeners("close");
        s.removeAllListeners("error");
        s.on("error", () => {});
        s.destroy();
      }
      onHanded(h.ended.then((b) => ({ up: before.up + b.up, down: before.down + b.down })));
    });
  };
  client.on("data", count);
  upstream.on("data", count);
}

// The member's headers as they go upstream: without the hop-by-hop ones and those its Connection
// header names (RFC 9110 7.6.1); undefined when its body's framing is not one the proxy can pass on
// (a transfer coding that does not end in chunked: the body would run to the connection's end,
// and the host could read what follows as another request).
function forwardedHeaders(req: http.IncomingMessage): http.IncomingHttpHeaders | undefined {
  const te = req.headers["transfer-encoding"];
  if (te !== undefined && !/(^|,)\s*chunked\s*$/i.test(te)) return undefined;
  const headers = { ...req.headers };
  const named = (req.headers.connection ?? "").split(",").map((h) => h.trim().toLowerCase());
  for (const h of [...HOP_HEADERS, ...named]) if (!FRAMING.includes(h)) delete headers[h];
  return headers;
}

// The host's response headers as the member gets them: the hop-by-hop ones are this hop's (the
// upstream connection is one request's, and says "close"; the member's may be kept alive).
function hopless(h: http.IncomingHttpHeaders): http.IncomingHttpHeaders {
  const out = { ...h };
  const named = (h.connection ?? "").split(",").map((x) => x.trim().toLowerCase());
  for (const k of [...HOP_HEADERS, "transfer-encoding", ...named]) if (k !== "content-length") delete out[k];
  return out;
}

const NOT_ABSOLUTE = "not an absolute http:// URL";

function absoluteHttp(text: string | undefined): URL | undefined {
  try {
    const url = new URL(text ?? "");
    return url.protocol === "http:" ? url : undefined;
  } catch {
    return undefined;
  }
}

async function forward(
  who: ProxyMember,
  policy: ProxyPolicy | undefined,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  onEvent: (e: EgressEvent) => void,
): Promise<void> {
  const started = Date.now();
  const url = absoluteHttp(req.url);
  const headers = forwardedHeaders(req);
  if (!url || !headers) {
    const reason = url ? `transfer-encoding "${req.headers["transfer-encoding"]}" is not chunked` : NOT_ABSOLUTE;
    res
      .writeHead(400, { "X-Lazarus-Egress": "refused", "Content-Type": "text/plain", Connection: "close" })
      .end(url ? `${reason}\n` : "a proxy request needs an absolute http:// URL (use CONNECT for https)\n");
    return onEvent(event(who, "http", url?.hostname ?? req.url ?? "", 0, { ok: false, reason }, started));
  }
  const port = url.port ? Number(url.port) : 80;
  const d = await decide(policy, url.hostname, port);
  if (!d.ok) {
    res.writeHead(403, { "X-Lazarus-Egress": "refused", "Content-Type": "text/plain" }).end(`${d.reason}\n`);
    return onEvent(event(who, "http", url.hostname, port, d, started));
  }
  headers.host = url.host; // the host that was checked, never another name sent to the same address
  const bytes = { up: 0, down: 0 };
  const up = http.request({
    host: d.address,
    port,
    method: req.method,
    path: `${url.pathname}${url.search}`,
    headers,
    agent: false,
    timeout: CONNECT_TIMEOUT_MS,
  });
  let done = false;
  const finish = (failure?: string): void => {
    if (done) return;
    done = true;
    onEvent(event(who, "http", url.hostname, port, failed(d, failure), started, bytes));
  };
  req.on("data", (c: Buffer) => (bytes.up += c.length));
  up.on("response", (r) => {
    up.setTimeout(0);
    res.writeHead(r.statusCode ?? 502, r.statusMessage, hopless(r.headers));
    r.on("data", (c: Buffer) => (bytes.down += c.length));
    r.pipe(res);
    r.on("end", () => finish());
    r.on("error", () => finish());
  });
  up.on("timeout", () => up.destroy(new Error("no answer")));
  up.on("error", (err: NodeJS.ErrnoException) => {
    if (!res.headersSent)
      res
        .writeHead(502, { "X-Lazarus-Egress": "upstream-failed", "Content-Type": "text/plain" })
        .end(`${url.host}: ${err.code ?? err.message}\n`);
    else res.destroy();
    finish(`${url.host} (${d.address}): ${err.code ?? err.message}`);
  });
  res.on("close", () => {
    if (!done) up.destroy();
  });
  req.pipe(up);
}
