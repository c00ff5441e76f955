// A container member with network: {egress: [...]} reaches only its list, through the proxy and a
// forwarder in the network namespace the engine joins. The test runs an HTTP and an HTTPS server
// on 127.0.0.1 under the test name forge.test (LAZARUS_EGRESS_HOSTS maps it, and
// LAZARUS_EGRESS_CIDRS=127.0.0.1/32 opens that one address, as an operator would for an internal
// forge). The test image is busybox only (no registry is used): wget speaks to the proxy for plain
// HTTP, nc asks it for a CONNECT tunnel to the HTTPS server; curl, git and node inside a container
// are not exercised here for want of an image that has them (the sandbox test does, through the
// same proxy).
import { rmSync, writeFileSync, existsSync, readFileSync, chmodSync, readdirSync } from "node:fs";
import http from "node:http";
import type net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EgressEvent } from "../../src/egress/proxy.js";
import { eventsFile } from "../../src/egress/state.js";
import { memberNetnsFile, netnsDir } from "../../src/bridge/netns.js";
import { configDir, lazarus, readRecord, tempDir, waitFor, uidBand } from "../helpers.js";
import { IMAGE, cleanupContainers, skipReason } from "../backends/container-helpers.js";
import { egressCleanup, httpsServer, makeCert } from "./helpers.js";
import { probeScript, readProbe } from "./probes.js";

const PROBE = probeScript(
  [
    'say env "$http_proxy $HTTPS_PROXY $NO_PROXY"',
    'say listed "$(wget -q -O- "http://forge.test:$PLAIN_PORT/hi" 2>&1)"',
    'say unlisted "$(wget -q -O- "http://other.test:$PLAIN_PORT/hi" 2>&1; echo " exit=$?")"',
    'say tunnel "$(printf "CONNECT forge.test:%s HTTP/1.1\\r\\nHost: forge.test\\r\\n\\r\\n" ' +
      '"$HTTPS_PORT" | nc -w 2 127.0.0.1 3128 | head -1)"',
    'say raw_ip "$(printf "CONNECT 127.0.0.1:%s HTTP/1.1\\r\\n\\r\\n" "$HTTPS_PORT" | nc -w 2 ' +
      '127.0.0.1 3128 | head -1)"',
    'say metadata "$(wget -q -O- http://169.254.169.254/latest/meta-data/ 2>&1; echo " exit=$?")"',
    'say direct "$(wget -q -O- -Y off "http://127.0.0.1:$PLAIN_PORT/" 2>&1; echo " exit=$?")"',
    'say dns "$(nslookup example.com 2>&1 | tail -1; echo " exit=$?")"',
  ],
  "exec sleep 100000",
);

describe.skipIf(skipReason)("a container member with an egress list", () => {
  const dir = tempDir("lazarus-egress-ctr-");
  writeFileSync(path.join(dir, "hosts"), "127.0.0.1 forge.test other.test\n");
  chmodSync(dir, 0o755);
  const env = {
    LAZARUS_UID_RANGE: uidBand("egress/container").range,
    LAZARUS_EGRESS_HOSTS: path.join(dir, "hosts"),
    LAZARUS_EGRESS_CIDRS: "127.0.0.1/32",
  };
  const state = tempDir("lazarus-egress-ctr-state-");
  const cfg = configDir({});
  const run = (...args: string[]) => lazarus([...args, "-c", cfg, "-s", state], { env });
  let web: { server: import("node:https").Server; port: number };
  let plain: http.Server;
  let plainPort = 0;
  let uid = "none";
  // the namespace files of this cell incarnation
  const namespaces = (): string[] =>
    (existsSync(netnsDir(state)) ? readdirSync(netnsDir(state)) : []).filter((n) => n.startsWith(`${uid}.`));

  beforeAll(async () => {
    web = await httpsServer(makeCert(dir, ["forge.test"]));
    plain = http.createServer((q, s) => s.end(`plain ${q.headers.host} ${q.url}\n`));
    await new Promise<void>((r) => plain.listen(0, "127.0.0.1", r));
    plainPort = (plain.address() as net.AddressInfo).port;
  });

  afterAll(async () => {
    await egressCleanup(state);
    await cleanupContainers(state);
    web?.server.close();
    plain?.close();
    for (const d of [state, cfg, dir]) rmSync(d, { recursive: true, force: true });
  });

  it("reaches a listed name through the proxy and is refused everything else", async () => {
    writeFileSync(
      path.join(cfg, "cells.d", "c.yaml"),
      [
        "apiVersion: lazarus/v1",
        "kind: Cell",
        "metadata: {name: egress-ctr}",
        "spec:",
        "  project: Org/repo#1",
        "  owner: human:tester",
        "  backend: container",
        `  container: {image: "${IMAGE}"}`,
        "  resources: {pids: 64}", // lazarus verify forks past the limit: a small one keeps it quick
        `  network: {egress: ["forge.test:${plainPort}", "forge.test:${web.port}"]}`,
        "  members:",
        `    - {identity: "agent:probe", role: executor, command: ["sh", "-c", ${JSON.stringify(PROBE)}], env: {PLAIN_PORT: "${plainPort}", HTTPS_PORT: "${web.port}"}}`,
        "",
      ].join("\n"),
    );
    const r = await run("apply", "--yes");
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const cell = path.join(state, "cells", "egress-ctr");
    const file = path.join(cell, "home", "probe", "probe.txt");
    await waitFor(() => existsSync(file), 120_000);
    const p = readProbe(file);
    expect(p.env).toBe("http://127.0.0.1:3128 http://127.0.0.1:3128 localhost,127.0.0.1");
    expect(p.listed).toBe(`plain forge.test:${plainPort} /hi`);
    expect(p.unlisted).toMatch(/403.* exit=1|exit=1/);
    expect(p.tunnel).toMatch(/^HTTP\/1.1 200/);
    expect(p.raw_ip).toMatch(/^HTTP\/1.1 403/);
    expect(p.metadata).toMatch(/exit=1$/);
    expect(p.direct).toMatch(/exit=1$/);
    expect(p.dns).toMatch(/exit=0$|exit=1$/);
    expect(p.dns).not.toMatch(/Address:?\s+\d+\.\d+\.\d+\.\d+/);
    const read = (): EgressEvent[] =>
      readFileSync(eventsFile(state), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as EgressEvent);
    // the proxy appends its events in batches (at most EVENTS_FLUSH_MS after the attempt)
    await waitFor(() => read().some((e) => e.host === "169.254.169.254"), 10_000);
    const events = read();
    expect(events.find((e) => e.host === "forge.test" && e.port === plainPort)).toMatchObject({
      cell: "egress-ctr",
      member: "agent:probe",
      kind: "http",
      verdict: "allowed",
    });
    expect(events.find((e) => e.host === "other.test")).toMatchObject({ verdict: "refused" });
    expect(events.find((e) => e.host === "169.254.169.254")).toMatchObject({
      verdict: "refused",
      reason: expect.stringMatching(/IP address/),
    });
    expect(readRecord(cell).network).toBe("egress");
    uid = readRecord(cell).uid;
  }, 240_000);

  it("lazarus verify proves I4 from a container in the member's view", async () => {
    const r = await lazarus(["verify", "egress-ctr", "--json", "-s", state], { env });
    const checks =
      (
        JSON.parse(r.stdout) as {
          cells: { checks: { invariant: string; check: string; ok: boolean; detail: string }[] }[];
        }
      ).cells[0]?.checks ?? [];
    expect(checks.filter((c) => !c.ok)).toEqual([]);
    expect(checks.filter((c) => c.invariant === "I4").map((c) => c.check)).toEqual(
      expect.arrayContaining([
        "reach a listed host through the proxy",
        "reach an unlisted host",
        "reach a raw IP address",
        "reach the cloud metadata address",
        "connect around the proxy",
      ]),
    );
    // the probe ran in the member's own namespace: no other was made
    expect(namespaces()).toEqual([path.basename(memberNetnsFile(state, uid, "probe"))]);
  }, 240_000);

  it("closing the cell removes its network namespace files", async () => {
    expect(namespaces()).toHaveLength(1);
    rmSync(path.join(cfg, "cells.d", "c.yaml"));
    const r = await run("apply", "--yes");
    expect(r.stdout + r.stderr).toMatch(/close\s+egress-ctr .* done/);
    expect(namespaces()).toEqual([]);
    expect(existsSync(memberNetnsFile(state, uid, "probe"))).toBe(false);
  }, 120_000);
});
