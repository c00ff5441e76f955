// A container member with network: {egress: [...]} reaches its forge with the tools an agent uses:
// curl, node (CONNECT with node's http, then https over the tunnel; and fetch) and git (ls-remote, clone and
// push over smart HTTP), and is refused the rest. The test image is made here, without a registry,
// from this host's own curl, git, git-remote-https and node with the libraries they load (ldd),
// busybox for the shell, and the test's certificate. The servers run on 127.0.0.1 under the test
// names forge.test and git.test: LAZARUS_EGRESS_HOSTS maps them, and LAZARUS_EGRESS_CIDRS=127.0.0.1/32
// opens that one address, as an operator would for an internal forge. Node 20's fetch reads no proxy
// variable (NODE_USE_ENV_PROXY comes with Node 24): node speaks CONNECT itself in one probe, and in
// the other node's global fetch goes through undici's EnvHttpProxyAgent (test/egress/probes.ts).
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EgressEvent } from "../../src/egress/proxy.js";
import { eventsFile } from "../../src/egress/state.js";
import { configDir, lazarus, tempDir, waitFor, uidBand } from "../helpers.js";
import { cleanupContainers, engine, skipReason } from "../backends/container-helpers.js";
import { egressCleanup, gitHttpsServer, httpsServer, makeCert, type TestCert } from "./helpers.js";
import { fetchProbeLines, gitProbe, nodeProbe, placeFetchProbe, probeScript, readProbe, seedRepos } from "./probes.js";

const IMAGE = "localhost/lazarus-test:egress-tools";
const TOOLS = ["/usr/bin/curl", "/usr/bin/git", "/usr/lib/git-core/git-remote-https", "/usr/bin/node"];

const PROBE = probeScript(
  [
    'say proxy_env "$HTTPS_PROXY $ALL_PROXY $NO_PROXY"',
    String.raw`say curl_listed "$(curl -sS --max-time 10 --cacert /etc/test-cert.pem ` +
      String.raw`"https://forge.test:$HTTPS_PORT/hi" 2>&1)"`,
    String.raw`say curl_unlisted "$(curl -sS --max-time 10 --cacert /etc/test-cert.pem ` +
      String.raw`"https://other.test:$HTTPS_PORT/hi" 2>&1; echo " exit=$?")"`,
    String.raw`say raw_ip "$(curl -sS --noproxy '' -o /dev/null -w '%{http_code}' --max-time 10 ` +
      String.raw`"http://127.0.0.1:$HTTPS_PORT/" 2>&1)"`,
    String.raw`say metadata "$(curl -sS --noproxy '' -o /dev/null -w '%{http_code}' --max-time 10 ` +
      String.raw`http://169.254.169.254/latest/meta-data/ 2>&1)"`,
    String.raw`say around "$(curl -sS --noproxy '*' --max-time 5 "http://127.0.0.1:$HTTPS_PORT/" 2>&1; echo " ` +
      String.raw`exit=$?")"`,
    'say node "$(node /probe/node-probe.cjs forge.test "$HTTPS_PORT" 2>&1)"',
    ...fetchProbeLines("/probe", "/etc/test-cert.pem"),
    ...gitProbe("/etc/test-cert.pem", "a container"),
  ],
  "exec sleep 100000",
);

const NODE_PROBE = nodeProbe('"/etc/test-cert.pem"');

// Copy a host file to the same path under root (symlinks followed: the file itself is copied).
function place(root: string, file: string): void {
  const to = path.join(root, file);
  if (existsSync(to)) return;
  mkdirSync(path.dirname(to), { recursive: true });
  copyFileSync(file, to);
  chmodSync(to, 0o755);
}

// The libraries a binary loads, as ldd names them.
function libraries(bin: string): string[] {
  const out = execFileSync("ldd", [bin], { encoding: "utf8" });
  return [...out.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)].map((m) => m[1] as string);
}

// The image, made from this host's tools (undefined), or why it cannot be made.
function buildImage(cert: TestCert): string | undefined {
  const busybox = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
  const missing = [...TOOLS, "/usr/bin/ldd"].filter((t) => !existsSync(t));
  if (!busybox || missing.length)
    return `cannot make the tools image: missing ${[busybox ? "" : "busybox", ...missing]}`;
  const root = mkdtempSync(path.join(tmpdir(), "lazarus-image-tools-"));
  try {
    mkdirSync(path.join(root, "bin"), { recursive: true });
    copyFileSync(busybox, path.join(root, "bin", "busybox"));
    chmodSync(path.join(root, "bin", "busybox"), 0o755);
    for (const a of ["sh", "tr", "cut", "mv", "sleep", "cat", "echo", "printf"])
      symlinkSync("busybox", path.join(root, "bin", a));
    for (const t of TOOLS) {
      place(root, t);
      for (const lib of libraries(t)) place(root, lib);
    }
    mkdirSync(path.join(root, "etc"), { recursive: true });
    writeFileSync(path.join(root, "etc", "test-cert.pem"), cert.pem);
    mkdirSync(path.join(root, "probe"));
    writeFileSync(path.join(root, "probe", "node-probe.cjs"), NODE_PROBE);
    placeFetchProbe(path.join(root, "probe"));
    mkdirSync(path.join(root, "tmp"));
    const tar = spawnSync("tar", ["-C", root, "-c", "."], { maxBuffer: 1 << 30 });
    if (tar.status !== 0) return `cannot pack the tools image: ${String(tar.stderr)}`;
    const r = spawnSync(engine.bin as string, ["import", "-q", "-c", "ENV PATH=/usr/bin:/bin", "-", IMAGE], {
      input: tar.stdout,
      encoding: "utf8",
      timeout: 300_000,
      maxBuffer: 1 << 20,
    });
    return r.status === 0 ? undefined : `cannot import the tools image: ${String(r.stderr).trim()}`;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

describe.skipIf(skipReason)("a container member with an egress list, using curl, node and git", () => {
  const dir = tempDir("lazarus-egress-tools-");
  chmodSync(dir, 0o755);
  writeFileSync(path.join(dir, "hosts"), "127.0.0.1 forge.test other.test git.test\n");
  const env = {
    LAZARUS_UID_RANGE: uidBand("egress/container-tools").range,
    LAZARUS_EGRESS_HOSTS: path.join(dir, "hosts"),
    LAZARUS_EGRESS_CIDRS: "127.0.0.1/32",
  };
  const state = tempDir("lazarus-egress-tools-state-");
  const cfg = configDir({});
  const run = (...args: string[]) => lazarus([...args, "-c", cfg, "-s", state], { env });
  let web: { server: import("node:https").Server; port: number };
  let git: { server: import("node:https").Server; port: number };
  let imageProblem: string | undefined;

  beforeAll(async () => {
    const cert = makeCert(dir, ["forge.test", "other.test", "git.test"]);
    imageProblem = buildImage(cert);
    web = await httpsServer(cert);
    const repos = seedRepos(dir);
    git = await gitHttpsServer(cert, repos);
  }, 300_000);

  afterAll(async () => {
    await egressCleanup(state);
    await cleanupContainers(state);
    spawnSync(engine.bin as string, ["rmi", "-f", IMAGE], { stdio: "ignore" });
    web?.server.close();
    git?.server.close();
    for (const d of [state, cfg, dir]) rmSync(d, { recursive: true, force: true });
  });

  it("reaches the listed forge with curl, node and git (ls-remote, clone, push); is refused the rest, as events", async () => {
    expect(imageProblem).toBeUndefined();
    writeFileSync(
      path.join(cfg, "cells.d", "c.yaml"),
      [
        "apiVersion: lazarus/v1",
        "kind: Cell",
        "metadata: {name: egress-tools}",
        "spec:",
        "  project: Org/repo#1",
        "  owner: human:tester",
        "  backend: container",
        `  container: {image: "${IMAGE}"}`,
        `  network: {egress: ["forge.test:${web.port}", "git.test:${git.port}"]}`,
        "  members:",
        `    - {identity: "agent:probe", role: executor, command: ["sh", "-c", ${JSON.stringify(PROBE)}], env: {HTTPS_PORT: "${web.port}", GIT_PORT: "${git.port}"}}`,
        "",
      ].join("\n"),
    );
    const r = await run("apply", "--yes");
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const file = path.join(state, "cells", "egress-tools", "home", "probe", "probe.txt");
    await waitFor(() => existsSync(file), 180_000);
    const p = readProbe(file);
    expect(p.proxy_env).toBe("http://127.0.0.1:3128 http://127.0.0.1:3128 localhost,127.0.0.1");
    expect(p.curl_listed).toBe("hello /hi");
    expect(p.node).toBe("hello /from-node");
    expect(p.fetch_listed).toBe("hello /from-fetch");
    expect(p.git_ls_remote).toMatch(/refs\/heads\/main/);
    expect(p.git_push).toBe("exit=0");
    expect(
      execFileSync("git", ["-C", path.join(dir, "repos", "repo.git"), "log", "-1", "--format=%s", "main"], {
        encoding: "utf8",
      }).trim(),
    ).toBe("pushed from a container");
    expect(p.curl_unlisted).toMatch(/403.* exit=56/);
    expect(p.fetch_unlisted).toMatch(/^error .*403/);
    expect(p.raw_ip).toBe("403");
    expect(p.metadata).toBe("403");
    expect(p.around).toMatch(/exit=7$/); // its own loopback: nothing listens there, no route out
    const read = (): EgressEvent[] =>
      readFileSync(eventsFile(state), "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as EgressEvent);
    await waitFor(() => read().filter((e) => e.host === "git.test").length >= 2, 10_000);
    const mine = read().filter((e) => e.cell === "egress-tools" && e.member === "agent:probe");
    expect(mine.find((e) => e.host === "other.test")).toMatchObject({
      verdict: "refused",
      reason: expect.stringMatching(/not on the cell's list/),
    });
    expect(mine.find((e) => e.host === "127.0.0.1")).toMatchObject({ verdict: "refused" });
    expect(mine.find((e) => e.host === "169.254.169.254")).toMatchObject({ verdict: "refused" });
    const pushed = mine.filter((e) => e.host === "git.test" && e.verdict === "allowed");
    expect(Math.max(...pushed.map((e) => e.bytesUp))).toBeGreaterThan(200);
    expect(readdirSync(path.join(state, "cells"))).toContain("egress-tools");
  }, 400_000);
});
