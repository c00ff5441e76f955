// The egress proxy over real sockets: an HTTPS server the test runs on 127.0.0.1 under the test
// name forge.test (LAZARUS_EGRESS_HOSTS-style hosts file maps it; the CIDR 127.0.0.1/32 is opened
// for it, as an operator would for an internal forge), reached through the proxy's door on
// 127.0.0.1:3128 inside a network namespace the test makes (as a member's is made): by a raw
// CONNECT client (a socket connected inside it by a child) and by curl run inside it with nsenter.
// The test's certificate is self-signed and trusted explicitly.
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import type net from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseEntry, type EgressEntry } from "../../src/egress/allow.js";
import type { EgressEvent } from "../../src/egress/proxy.js";
import { EgressService } from "../../src/egress/service.js";
import { reachedHosts } from "../../src/egress/events.js";
import { Metrics } from "../../src/daemon/metrics.js";
import { MEMBER_PORT, eventsFile, writeCellFile, writeSettingsFile } from "../../src/egress/state.js";
import { ensureNetns, memberNetnsFile, netnsInode, removeNetns } from "../../src/bridge/netns.js";
import { cleanup, tempDir, waitFor } from "../helpers.js";
import {
  connectInNetns,
  connectVia,
  httpsGetVia,
  httpsServer,
  makeCert,
  netnsSkipReason,
  type TestCert,
} from "./helpers.js";

const skipReason = netnsSkipReason();
if (skipReason) console.warn(`SKIPPED: the egress proxy: ${skipReason}`);
const exec = promisify(execFile);
// curl as a member runs it: inside the member's network namespace (the proxy is 127.0.0.1:3128 there)
const run = (file: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}) =>
  exec("nsenter", [`--net=${sock}`, "--", file, ...args], opts);
const entries = (...t: string[]): EgressEntry[] =>
  t.map((x) => {
    const p = parseEntry(x);
    if (!p.ok) throw new Error(p.error);
    return p.value;
  });

let dir: string;
let cert: TestCert;
let https: { server: import("node:https").Server; port: number };
let plain: http.Server;
let plainPort: number;
let service: EgressService;
let sock: string; // the member's namespace file
const relay = { port: 3128 }; // the proxy's door inside it
const events: EgressEvent[] = [];

async function setList(list: EgressEntry[]): Promise<void> {
  await writeCellFile(dir, {
    formatVersion: 1,
    cell: "c1",
    uid: "u1",
    entries: list,
    members: [{ identity: "agent:a", home: "a", netns: sock }],
  });
  await service.reload();
}

beforeAll(async () => {
  if (skipReason) return;
  dir = tempDir("lazarus-egress-");
  cert = makeCert(dir, ["forge.test", "other.test"]);
  https = await httpsServer(cert);
  plain = http.createServer((req, res) => res.end(`plain ${req.headers.host} ${req.url}\n`));
  await new Promise<void>((r) => plain.listen(0, "127.0.0.1", r));
  plainPort = (plain.address() as net.AddressInfo).port;
  writeFileSync(
    path.join(dir, "hosts"),
    "127.0.0.1 forge.test other.test\n169.254.169.254 metadata.test\n10.99.0.1 private.test\n127.0.0.2 loop.test\n",
  );
  await writeSettingsFile(dir, { cidrs: [{ address: "127.0.0.1", prefix: 32 }], hostsFile: path.join(dir, "hosts") });
  sock = memberNetnsFile(dir, "u1", "a");
  await ensureNetns(sock);
  service = new EgressService(dir, (e) => events.push(e));
  await setList(
    entries(
      `forge.test:${https.port}`,
      `forge.test:${plainPort}`,
      "metadata.test",
      "private.test",
      `loop.test:${https.port}`,
    ),
  );
});

afterAll(async () => {
  await service?.close();
  if (sock) await removeNetns(sock);
  https?.server.close();
  plain?.close();
  cleanup(dir);
});

const last = (): EgressEvent => events[events.length - 1] as EgressEvent;
// The events file's lines (the proxy appends them in batches, at most EVENTS_FLUSH_MS late).
const fileEvents = (): EgressEvent[] =>
  readFileSync(eventsFile(dir), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as EgressEvent);
const allWritten = (): Promise<void> => waitFor(() => fileEvents().length === events.length);

describe.skipIf(skipReason !== undefined)("the egress proxy", () => {
  it("tunnels HTTPS to a listed name and records the bytes each way", async () => {
    const body = await httpsGetVia(sock, "forge.test", https.port, "/bytes/5000", cert.pem);
    expect(body).toMatch(/^HTTP\/1.1 200/);
    await waitFor(() => events.length > 0 && last().host === "forge.test");
    expect(last()).toMatchObject({
      cell: "c1",
      member: "agent:a",
      kind: "connect",
      host: "forge.test",
      port: https.port,
      verdict: "allowed",
      address: "127.0.0.1",
    });
    expect(last().bytesDown).toBeGreaterThan(5000);
    expect(last().bytesUp).toBeGreaterThan(100);
  });

  it.each([
    ["an unlisted name", "other.test:PORT", /not on the cell's list/],
    ["a listed name on an unlisted port", "forge.test:1", /not on the cell's list/],
    ["a raw IP", "127.0.0.1:PORT", /IP address/],
    ["a raw IPv6", "[::1]:PORT", /IP address/],
    ["the metadata address by name", "metadata.test:443", /metadata/],
    ["a private address outside the CIDRs", "private.test:443", /private/],
    ["a listed name that resolves to loopback outside the CIDRs", "loop.test:PORT", /loopback/],
  ])("refuses %s", async (_what, target, why) => {
    const c = await connectVia(sock, target.replace("PORT", String(https.port)));
    c.socket.destroy();
    expect(c.status).toBe(403);
    await waitFor(() => last().verdict === "refused" && why.test(last().reason));
  });

  it("forwards plain HTTP for a listed name and refuses others", async () => {
    const ok = await run("curl", [
      "-sS",
      "--proxy",
      `http://127.0.0.1:${relay.port}`,
      `http://forge.test:${plainPort}/x?y=1`,
    ]);
    expect(ok.stdout).toBe(`plain forge.test:${plainPort} /x?y=1\n`);
    const no = await run("curl", [
      "-sS",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      "--proxy",
      `http://127.0.0.1:${relay.port}`,
      `http://other.test:${plainPort}/`,
    ]);
    expect(no.stdout).toBe("403");
    await waitFor(() => last().kind === "http" && last().verdict === "refused");
  });

  it("sends the checked host as the Host header, whatever the member wrote there", async () => {
    const r = await run("curl", [
      "-sS",
      "--proxy",
      `http://127.0.0.1:${relay.port}`,
      "-H",
      "Host: other.test",
      `http://forge.test:${plainPort}/h`,
    ]);
    expect(r.stdout).toBe(`plain forge.test:${plainPort} /h\n`);
  });

  it("serves curl over HTTPS through the proxy, and refuses what is not listed", async () => {
    const env = { ...process.env, HTTPS_PROXY: `http://127.0.0.1:${relay.port}`, NO_PROXY: "localhost,127.0.0.1" };
    const ok = await run("curl", ["-sS", "--cacert", cert.cert, `https://forge.test:${https.port}/hi`], { env });
    expect(ok.stdout).toBe("hello /hi\n");
    const no = await run("curl", ["-sS", "--cacert", cert.cert, `https://other.test:${https.port}/hi`], { env }).catch(
      (e: { stderr: string }) => e,
    );
    expect((no as { stderr: string }).stderr).toMatch(/403/);
  });

  it("applies a changed list to the next connection", async () => {
    await setList(entries(`other.test:${https.port}`));
    expect((await connectVia(sock, `forge.test:${https.port}`)).status).toBe(403);
    const c = await connectVia(sock, `other.test:${https.port}`);
    c.socket.destroy();
    expect(c.status).toBe(200);
    await setList(entries(`forge.test:${https.port}`, `forge.test:${plainPort}`, "metadata.test", "private.test"));
  });

  it("the timer's reload applies a changed list and a changed hosts file without a signal", async () => {
    await writeCellFile(dir, {
      formatVersion: 1,
      cell: "c1",
      uid: "u1",
      entries: entries(`other.test:${https.port}`),
      members: [{ identity: "agent:a", home: "a", netns: sock }],
    });
    await service.reloadIfChanged();
    expect((await connectVia(sock, `forge.test:${https.port}`)).status).toBe(403);
    const hosts = readFileSync(path.join(dir, "hosts"), "utf8");
    writeFileSync(path.join(dir, "hosts"), hosts.replace("forge.test other.test", "forge.test"));
    await service.reloadIfChanged();
    expect((await connectVia(sock, `other.test:${https.port}`)).status).toBe(403); // no longer resolves
    writeFileSync(path.join(dir, "hosts"), hosts);
    await service.reloadIfChanged();
    const c = await connectVia(sock, `other.test:${https.port}`);
    c.socket.destroy();
    expect(c.status).toBe(200);
    await setList(entries(`forge.test:${https.port}`, `forge.test:${plainPort}`, "metadata.test", "private.test"));
  });

  it("counts attempts by cell and verdict for /metrics, reading only what was appended since", async () => {
    await allWritten();
    const m = new Metrics();
    m.watchEgress(eventsFile(dir));
    const value = (text: string, verdict: string): number =>
      Number(new RegExp(`lazarus_egress_connections_total\\{cell="c1",verdict="${verdict}"\\} (\\d+)`).exec(text)?.[1]);
    const first = await m.registry.metrics();
    expect(value(first, "refused")).toBe(events.filter((e) => e.verdict === "refused").length);
    expect(value(first, "allowed")).toBe(events.filter((e) => e.verdict === "allowed").length);
    const c = await connectVia(sock, "unlisted.test:443");
    c.socket.destroy();
    await waitFor(() => readFileSync(eventsFile(dir), "utf8").includes("unlisted.test"));
    expect(value(await m.registry.metrics(), "refused")).toBe(value(first, "refused") + 1);
  });

  it("lists the hosts a cell reached, for its close log", async () => {
    await allWritten();
    const reached = await reachedHosts(eventsFile(dir), "c1", "2000-01-01T00:00:00Z");
    expect(reached.map((r) => r.host)).toContain(`forge.test:${https.port}`);
    expect(reached.find((r) => r.host === `forge.test:${https.port}`)?.bytesDown).toBeGreaterThan(5000);
    expect(reached.map((r) => r.host)).not.toContain("metadata.test:443");
    expect(await reachedHosts(eventsFile(dir), "c1", "2999-01-01T00:00:00Z")).toEqual([]);
  });

  it("writes every attempt to the state dir's events file", async () => {
    await allWritten(); // (a missing line would never come: the wait fails)
    const lines = fileEvents();
    expect(lines.length).toBe(events.length);
    expect(lines.some((e) => e.verdict === "refused" && /IP address/.test(e.reason))).toBe(true);
  });

  it("closed (its process killed), it leaves the member refused; a new proxy opens the door again from the cell files", async () => {
    const c0 = await connectVia(sock, `forge.test:${https.port}`);
    await service.close();
    await expect(connectInNetns(sock, MEMBER_PORT)).rejects.toThrow(/ECONNREFUSED/);
    c0.socket.destroy();
    service = new EgressService(dir, (e) => events.push(e));
    await service.reload();
    expect(service.listening()).toEqual({ [sock]: netnsInode(sock) });
    const c = await connectVia(sock, `forge.test:${https.port}`);
    c.socket.destroy();
    expect(c.status).toBe(200);
  });

  it("opens the door again when the member's namespace was made anew at the same file", async () => {
    const before = netnsInode(sock);
    await removeNetns(sock);
    const after = await ensureNetns(sock);
    expect(after).not.toBe(before);
    await service.reload();
    expect(service.listening()).toEqual({ [sock]: after });
    const c = await connectVia(sock, `forge.test:${https.port}`);
    c.socket.destroy();
    expect(c.status).toBe(200);
  });
});
