// A sandboxed member with network: {egress: [...]} reaches only its list, through the proxy.
// The test runs an HTTPS server and a smart-HTTP git server (git http-backend behind node) on
// 127.0.0.1 under the test names forge.test and git.test: LAZARUS_EGRESS_HOSTS maps the names,
// and LAZARUS_EGRESS_CIDRS=127.0.0.1/32 opens that one address, as an operator would for an
// internal forge. The certificate is self-signed; clients are told to trust it (curl --cacert,
// NODE_EXTRA_CA_CERTS / ca, GIT_SSL_CAINFO). Node 20's fetch reads no proxy variable of its own
// (NODE_USE_ENV_PROXY comes with Node 24): one node probe speaks CONNECT with node's http, the other
// is node's global fetch with undici's EnvHttpProxyAgent as its dispatcher (test/egress/probes.ts).
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EgressEvent } from "../../src/egress/proxy.js";
import { eventsFile, proxyRecordFile } from "../../src/egress/state.js";
import { netnsInode } from "../../src/bridge/netns.js";
import { FIXTURES, sandboxSuite, skipReason } from "../sandbox/helpers.js";
import { lazarus, tempDir, waitFor, procState } from "../helpers.js";
import { egressCleanup, gitHttpsServer, httpsServer, makeCert, type TestCert } from "./helpers.js";
import { fetchProbeLines, gitProbe, nodeProbe, placeFetchProbe, probeScript, readProbe, seedRepos } from "./probes.js";

const dir = tempDir("lazarus-egress-sbx-");
chmodSync(dir, 0o755); // bound read-only into the sandbox: the cell's uid reads the probe and the cert

const PROBE = probeScript(
  [
    'say proxy_env "$HTTPS_PROXY $https_proxy $ALL_PROXY $NO_PROXY"',
    String.raw`say curl_listed "$(curl -sS --max-time 10 --cacert "$T/cert.pem" ` +
      String.raw`"https://forge.test:$HTTPS_PORT/hi" 2>&1)"`,
    String.raw`say curl_unlisted "$(curl -sS --max-time 10 --cacert "$T/cert.pem" ` +
      String.raw`"https://other.test:$HTTPS_PORT/hi" 2>&1; echo " exit=$?")"`,
    String.raw`say raw_ip_proxied "$(curl -sS --noproxy '' -o /dev/null -w '%{http_code}' --max-time 10 ` +
      String.raw`"http://127.0.0.1:$PLAIN_PORT/" 2>&1)"`,
    String.raw`say raw_ip_direct "$(curl -sS --noproxy '*' --max-time 5 "http://127.0.0.1:$PLAIN_PORT/" 2>&1; ` +
      String.raw`echo " exit=$?")"`,
    String.raw`say metadata_proxied "$(curl -sS --noproxy '' -o /dev/null -w '%{http_code}' --max-time 10 ` +
      String.raw`http://169.254.169.254/latest/meta-data/ 2>&1)"`,
    String.raw`say metadata_direct "$(curl -sS --noproxy '*' --max-time 5 ` +
      String.raw`http://169.254.169.254/latest/meta-data/ 2>&1; echo " exit=$?")"`,
    'say dns "$(getent hosts example.com; echo "exit=$?")"',
    'say node "$(node "$T/node-probe.cjs" forge.test "$HTTPS_PORT" 2>&1)"',
    ...fetchProbeLines('"$T"', '"$T/cert.pem"'),
    ...gitProbe('"$T/cert.pem"', "a sandbox"),
  ],
  "exec sleep 600",
);

// Every 100 ms: "ok <ns>" when the listed host answered through the proxy, "fail <ns>" otherwise.
const LOOP = String.raw`
while :; do
  if curl -s --max-time 2 --cacert "$T/cert.pem" "https://forge.test:$HTTPS_PORT/hi" >/dev/null 2>&1; then r=ok; else r=fail; fi
  echo "$r $(date +%s%N)" >> "$HOME/loop.txt"; sleep 0.1
done
`;

const NODE_PROBE = nodeProbe('process.env.T + "/cert.pem"');

describe.skipIf(skipReason !== undefined)("a sandboxed member with an egress list", () => {
  let cert: TestCert;
  let web: { server: import("node:https").Server; port: number };
  let git: { server: import("node:https").Server; port: number };
  let plain: http.Server;
  let plainPort = 0;
  writeFileSync(path.join(dir, "hosts"), "127.0.0.1 forge.test other.test git.test\n");
  const suite = sandboxSuite("egress/sandbox", {
    LAZARUS_SANDBOX_BINDS: `${FIXTURES}:${dir}`,
    LAZARUS_EGRESS_HOSTS: path.join(dir, "hosts"),
    LAZARUS_EGRESS_CIDRS: "127.0.0.1/32",
  });
  const { run, cfg, state } = suite;

  beforeAll(async () => {
    cert = makeCert(dir, ["forge.test", "other.test", "git.test"]);
    chmodSync(cert.cert, 0o644);
    web = await httpsServer(cert);
    plain = http.createServer((_q, s) => s.end("plain\n"));
    await new Promise<void>((r) => plain.listen(0, "127.0.0.1", r));
    plainPort = (plain.address() as net.AddressInfo).port;
    const repos = seedRepos(dir);
    git = await gitHttpsServer(cert, repos);
    writeFileSync(path.join(dir, "probe.sh"), PROBE);
    writeFileSync(path.join(dir, "loop.sh"), LOOP);
    writeFileSync(path.join(dir, "node-probe.cjs"), NODE_PROBE);
    placeFetchProbe(dir);
  });

  afterAll(async () => {
    await egressCleanup(state);
    web?.server.close();
    git?.server.close();
    plain?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const cellFile = (list: string[]): string => {
    const env = `{T: "${dir}", HTTPS_PORT: "${web.port}", PLAIN_PORT: "${plainPort}", GIT_PORT: "${git.port}"}`;
    return [
      "apiVersion: lazarus/v1",
      "kind: Cell",
      "metadata: {name: egress-sbx}",
      "spec:",
      "  project: Org/repo#1",
      "  owner: human:tester",
      "  backend: sandbox",
      "  resources: {pids: 96}", // lazarus verify forks past the limit: a small one keeps it quick
      `  network: {egress: [${list.map((e) => JSON.stringify(e)).join(", ")}]}`,
      "  members:",
      `    - {identity: "agent:probe", role: executor, command: ["sh", "${dir}/probe.sh"], env: ${env}}`,
      `    - {identity: "agent:loop", role: executor, command: ["sh", "${dir}/loop.sh"], env: ${env}}`,
      "",
    ].join("\n");
  };

  const probe = (): Record<string, string> =>
    readProbe(path.join(state, "cells", "egress-sbx", "home", "probe", "probe.txt"));

  it("plan shows the list; apply starts the members behind the proxy", async () => {
    writeFileSync(path.join(cfg, "cells.d", "c.yaml"), cellFile([`forge.test:${web.port}`, `git.test:${git.port}`]));
    const p = await run("plan");
    expect(p.stdout).toMatch(new RegExp(`network egress \\(forge.test:${web.port}, git.test:${git.port}\\)`));
    const r = await run("apply", "--yes");
    expect(r.stdout + r.stderr).toMatch(/create\s+egress-sbx .* done/);
    expect(r.exitCode).toBe(0);
    await waitFor(() => existsSync(path.join(state, "cells", "egress-sbx", "home", "probe", "probe.txt")), 60_000);
  }, 120_000);

  it("reaches a listed name with curl, node (its http, and its fetch) and git (ls-remote and push)", () => {
    const p = probe();
    expect(p.proxy_env).toBe("http://127.0.0.1:3128 http://127.0.0.1:3128 http://127.0.0.1:3128 localhost,127.0.0.1");
    expect(p.curl_listed).toBe("hello /hi");
    expect(p.node).toBe("hello /from-node");
    expect(p.fetch_listed).toBe("hello /from-fetch");
    expect(p.git_ls_remote).toMatch(/HEAD refs\/heads\/main|refs\/heads\/main/);
    expect(p.git_push).toBe("exit=0");
    expect(
      execFileSync("git", ["-C", path.join(dir, "repos", "repo.git"), "log", "-1", "--format=%s", "main"], {
        encoding: "utf8",
      }).trim(),
    ).toBe("pushed from a sandbox");
  });

  it("is refused an unlisted name, raw IPs, the metadata address and the host's loopback, and has no resolver", () => {
    const p = probe();
    expect(p.curl_unlisted).toMatch(/403.* exit=56/);
    expect(p.fetch_unlisted).toMatch(/^error .*403/);
    expect(p.raw_ip_proxied).toBe("403");
    expect(p.raw_ip_direct).toMatch(/exit=7$/); // its own loopback: nothing listens there
    expect(p.metadata_proxied).toBe("403");
    expect(p.metadata_direct).toMatch(/exit=(7|28)$/); // no route out of its namespace
    expect(p.dns).toBe("exit=2");
  });

  it("lazarus verify proves I4 from inside each member: listed reachable; unlisted, raw IP, metadata, loopback refused; no route around; no resolver", async () => {
    const r = await lazarus(["verify", "egress-sbx", "--json", "-s", state], { env: suite.env });
    const report = JSON.parse(r.stdout) as {
      cells: { checks: { invariant: string; check: string; member?: string; ok: boolean; detail: string }[] }[];
    };
    const checks = report.cells[0]?.checks ?? [];
    expect(checks.filter((c) => !c.ok)).toEqual([]);
    expect(r.exitCode).toBe(0);
    const i4 = checks.filter((c) => c.invariant === "I4" && c.member === "agent:probe").map((c) => c.check);
    expect(i4).toEqual(
      expect.arrayContaining([
        "reach a listed host through the proxy",
        "reach an unlisted host",
        "reach a raw IP address",
        "reach the cloud metadata address",
        "reach the host's loopback through the proxy",
        "connect around the proxy",
        "resolve names inside (DNS leak)",
      ]),
    );
    expect(checks.find((c) => c.check === "reach a listed host through the proxy")?.detail).toMatch(
      new RegExp(`forge.test:${web.port} through \\(status 200\\)`),
    );
  }, 120_000);

  it("records every attempt as an event: member, host, port, verdict and why, bytes, duration", () => {
    const events = readFileSync(eventsFile(state), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as EgressEvent);
    const mine = events.filter((e) => e.member === "agent:probe");
    expect(mine.find((e) => e.host === "forge.test" && e.verdict === "allowed")).toMatchObject({
      cell: "egress-sbx",
      port: web.port,
      kind: "connect",
    });
    expect(mine.find((e) => e.host === "other.test")).toMatchObject({
      verdict: "refused",
      reason: expect.stringMatching(/not on the cell's list/),
    });
    expect(mine.find((e) => e.host === "127.0.0.1")).toMatchObject({
      verdict: "refused",
      reason: expect.stringMatching(/IP address/),
    });
    expect(mine.find((e) => e.host === "169.254.169.254")).toMatchObject({ verdict: "refused" });
    const pushed = mine.filter((e) => e.host === "git.test" && e.verdict === "allowed");
    expect(pushed.length).toBeGreaterThanOrEqual(2);
    expect(Math.max(...pushed.map((e) => e.bytesUp))).toBeGreaterThan(200);
    expect(mine.every((e) => e.durationMs >= 0 && e.bytesDown >= 0)).toBe(true);
  });

  it("lazarus events shows them as events of the cell, in text and --json", async () => {
    const json = await lazarus(["events", "egress-sbx", "--json", "-s", state]);
    const shown = json.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { action: string; cell: string; details?: Record<string, unknown> });
    expect(shown.find((e) => e.action === "create")).toBeDefined();
    expect(shown.find((e) => e.action === "egress-refused" && e.details?.host === "other.test")).toMatchObject({
      cell: "egress-sbx",
      details: { member: "agent:probe", verdict: "refused", port: web.port },
    });
    expect(shown.find((e) => e.action === "egress" && e.details?.host === "git.test")?.details).toMatchObject({
      member: "agent:probe",
      verdict: "allowed",
      bytesUp: expect.any(Number),
      bytesDown: expect.any(Number),
      durationMs: expect.any(Number),
    });
    // every kind of refusal the members met (the probe's, and verify's from inside), each with why
    const refused = (host: string) => shown.find((e) => e.action === "egress-refused" && e.details?.host === host);
    for (const [host, why] of [
      ["other.test", /not on the cell's list/],
      ["127.0.0.1", /IP address/], // the host's loopback, asked for by address
      ["169.254.169.254", /IP address/], // the metadata address
      ["lazarus-verify-unlisted.invalid", /not on the cell's list/],
      ["1.1.1.1", /IP address/],
    ] as const)
      expect(refused(host), host).toMatchObject({
        details: { verdict: "refused", reason: expect.stringMatching(why) },
      });
    const text = await lazarus(["events", "egress-sbx", "-s", state]);
    expect(text.stdout).toMatch(
      new RegExp(
        `egress-refused\\s+agent:probe → other.test:${web.port}: other.test:${web.port} is not on the cell's list`,
      ),
    );
  });

  it("a killed proxy leaves members with refused connections until the next apply starts it again", async () => {
    const loopFile = path.join(state, "cells", "egress-sbx", "home", "loop", "loop.txt");
    const lines = (): string[] => (existsSync(loopFile) ? readFileSync(loopFile, "utf8").trim().split("\n") : []);
    await waitFor(() => lines().some((l) => l.startsWith("ok ")), 30_000);
    const rec = JSON.parse(readFileSync(proxyRecordFile(state), "utf8")) as { pid: number };
    process.kill(rec.pid, "SIGKILL");
    await waitFor(() => procState(rec.pid) === undefined || procState(rec.pid) === "Z", 5000);
    const killedAt = BigInt(Date.now()) * 1_000_000n;
    const before = lines().length;
    await waitFor(() => lines().length >= before + 5, 30_000);
    const during = lines()
      .slice(before)
      .filter((l) => BigInt(l.split(" ")[1] as string) > killedAt);
    expect(during.length).toBeGreaterThan(0);
    expect(during.every((l) => l.startsWith("fail "))).toBe(true);
    const r = await run("apply", "--yes");
    expect(r.exitCode).toBe(0);
    const restartedAt = lines().length;
    await waitFor(
      () =>
        lines()
          .slice(restartedAt)
          .some((l) => l.startsWith("ok ")),
      30_000,
    );
  }, 120_000);

  it("a changed list applies to the members' next connections without restarting them", async () => {
    const pidsBefore = JSON.parse(
      readFileSync(path.join(state, "cells", "egress-sbx", ".lazarus", "cell.json"), "utf8"),
    ).members.map((m: { pid: number }) => m.pid);
    writeFileSync(path.join(cfg, "cells.d", "c.yaml"), cellFile([`other.test:${web.port}`, `git.test:${git.port}`]));
    const p = await run("plan");
    expect(p.stdout).toMatch(
      new RegExp(
        `egress list \\+ other.test:${web.port}, - forge.test:${web.port} \\(applies to new connections; members keep running\\)`,
      ),
    );
    expect((await run("apply", "--yes")).exitCode).toBe(0);
    const loopFile = path.join(state, "cells", "egress-sbx", "home", "loop", "loop.txt");
    const n = readFileSync(loopFile, "utf8").trim().split("\n").length;
    await waitFor(
      () =>
        readFileSync(loopFile, "utf8")
          .trim()
          .split("\n")
          .slice(n + 1)
          .some((l) => l.startsWith("fail ")),
      30_000,
    );
    const pidsAfter = JSON.parse(
      readFileSync(path.join(state, "cells", "egress-sbx", ".lazarus", "cell.json"), "utf8"),
    ).members.map((m: { pid: number }) => m.pid);
    expect(pidsAfter).toEqual(pidsBefore);
    expect((await run("plan")).stdout).toMatch(/No changes|nothing to do/i);
  }, 120_000);

  it("closing the cell lists the hosts it reached in its close log, and takes its namespace files and the proxy away", async () => {
    const cellFiles = JSON.parse(readFileSync(path.join(state, "egress", "cells", "egress-sbx.json"), "utf8")) as {
      members: { netns: string }[];
    };
    expect(cellFiles.members.map((m) => m.netns)).toHaveLength(2);
    for (const m of cellFiles.members) expect(netnsInode(m.netns)).toBeDefined();
    const proxy = JSON.parse(readFileSync(proxyRecordFile(state), "utf8")) as { pid: number };
    rmSync(path.join(cfg, "cells.d", "c.yaml"));
    const r = await run("apply", "--yes");
    expect(r.stdout + r.stderr).toMatch(/close\s+egress-sbx .* done/);
    const log = JSON.parse(
      readFileSync(path.join(state, "graveyard", "egress-sbx", ".lazarus", "close.log"), "utf8"),
    ) as { egressReached: { host: string; connections: number }[] };
    expect(log.egressReached.map((h) => h.host)).toEqual(
      expect.arrayContaining([`git.test:${git.port}`, `forge.test:${web.port}`]),
    );
    expect(log.egressReached.map((h) => h.host)).not.toContain(`other.test:${web.port}`.replace("other", "metadata"));
    for (const m of cellFiles.members) expect(existsSync(m.netns)).toBe(false);
    await waitFor(() => procState(proxy.pid) === undefined || procState(proxy.pid) === "Z", 5000);
  }, 120_000);
});
