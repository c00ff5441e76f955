// Test helpers for egress: a self-signed certificate for a test host name (made with openssl;
// clients are told to trust it with --cacert, NODE_EXTRA_CA_CERTS or GIT_SSL_CAINFO), an HTTPS
// server on 127.0.0.1 the test runs, and a client that speaks to a proxy socket.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import https from "node:https";
import net from "node:net";
import path from "node:path";
import tls from "node:tls";
import { rm } from "node:fs/promises";
import { netnsDir, sweepNetns } from "../../src/bridge/netns.js";
import { MEMBER_PORT } from "../../src/egress/state.js";
import { stopProxy } from "../../src/egress/supervise.js";
import { gitBackend } from "../git-http.js";

// Stop a state dir's proxy and remove its members' namespace files under /run/lazarus/netns.
export async function egressCleanup(state: string): Promise<void> {
  await stopProxy(state);
  await sweepNetns(state, () => false);
  await rm(netnsDir(state), { recursive: true, force: true });
}

export interface TestCert {
  cert: string; // PEM file path
  key: string;
  pem: string;
}

export function makeCert(dir: string, names: string[]): TestCert {
  const cert = path.join(dir, "cert.pem");
  const key = path.join(dir, "key.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "1",
      "-subj",
      `/CN=${names[0]}`,
      "-addext",
      `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}`,
    ],
    { stdio: "ignore" },
  );
  return { cert, key, pem: readFileSync(cert, "utf8") };
}

// An HTTPS server on 127.0.0.1 answering GET /bytes/N with N bytes and anything else with "hello".
export async function httpsServer(c: TestCert): Promise<{ server: https.Server; port: number }> {
  const server = https.createServer({ cert: readFileSync(c.cert), key: readFileSync(c.key) }, (req, res) => {
    const m = /^\/bytes\/(\d+)$/.exec(req.url ?? "");
    if (m) {
      res.writeHead(200, { "Content-Length": m[1] });
      res.end(Buffer.alloc(Number(m[1]), 120));
      return;
    }
    res.end(`hello ${req.url}\n`);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as net.AddressInfo).port };
}

// Why tests that need a member's network namespace cannot run here, if they cannot.
export function netnsSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return "it needs root (network namespaces by file, nsenter)";
  if (spawnSync("nsenter", ["--version"]).status !== 0) return "nsenter is not installed";
  return undefined;
}

// A socket connected to 127.0.0.1:port inside the network namespace of file, as a member's would
// be: a child started there with nsenter connects and hands the socket over node's IPC.
export function connectInNetns(file: string, port: number): Promise<net.Socket> {
  const child = spawn("nsenter", [`--net=${file}`, "--", process.execPath, CONNECT_CHILD, String(port)], {
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  return new Promise((resolve, reject) => {
    child.once("message", (msg, handle) => {
      if (handle instanceof net.Socket) resolve(handle);
      else reject(Object.assign(new Error(`connect in ${file}: ${JSON.stringify(msg)}`), msg as object));
    });
    child.once("exit", (code) => reject(new Error(`connect in ${file}: exit ${code}`)));
  });
}

const CONNECT_CHILD = new URL("./connect-child.mjs", import.meta.url).pathname;

// Send "CONNECT host:port" to the proxy's door in the namespace of file (127.0.0.1:3128 there);
// the status line and, for 200, the socket.
export async function connectVia(
  netns: string,
  authority: string,
): Promise<{ status: number; text: string; socket: net.Socket }> {
  const s = await connectInNetns(netns, MEMBER_PORT);
  s.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  return new Promise((resolve, reject) => {
    let buf = "";
    const onData = (d: Buffer): void => {
      buf += d.toString("latin1");
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      s.off("data", onData);
      resolve({ status: Number(buf.split(" ")[1]), text: buf, socket: s });
    };
    s.on("data", onData);
    s.on("error", reject);
  });
}

// GET https://host/path through the proxy's door in a namespace, trusting the test certificate.
export async function httpsGetVia(
  sock: string,
  host: string,
  port: number,
  pathName: string,
  ca: string,
): Promise<string> {
  const c = await connectVia(sock, `${host}:${port}`);
  if (c.status !== 200) throw new Error(`refused: ${c.text}`);
  const t = tls.connect({ socket: c.socket, servername: host, ca });
  return new Promise((resolve, reject) => {
    let body = "";
    t.on("secureConnect", () => t.write(`GET ${pathName} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
    t.on("data", (d: Buffer) => (body += d.toString()));
    t.on("end", () => resolve(body));
    t.on("error", reject);
  });
}

// A smart-HTTP git server over HTTPS on 127.0.0.1: `git http-backend` (CGI, test/git-http.ts)
// behind a small node server, serving the bare repositories under root (pushes allowed).
export async function gitHttpsServer(c: TestCert, root: string): Promise<{ server: https.Server; port: number }> {
  const server = https.createServer({ cert: readFileSync(c.cert), key: readFileSync(c.key) }, gitBackend(root));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as net.AddressInfo).port };
}

// A member's process opening n connections to 127.0.0.1:port in the namespace of file and holding
// them: how many connected, and how many the service closed at once (within a second and a half);
// stop() ends it and its connections.
export async function floodDoor(
  file: string,
  port: number,
  n: number,
): Promise<{ result: { open: number; closed: number }; stop: () => void }> {
  const script = `
    const net = require("node:net");
    let closed = 0, open = 0;
    for (let i = 0; i < ${n}; i++) {
      const s = net.connect(${port}, "127.0.0.1");
      s.on("connect", () => open++);
      s.on("close", () => closed++);
      s.on("error", () => {});
    }
    setTimeout(() => console.log(JSON.stringify({ open, closed })), 1500);
    process.stdin.on("end", () => process.exit(0)).resume();`;
  const child = spawn("nsenter", [`--net=${file}`, "--", process.execPath, "-e", script], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const stop = (): void => {
    child.stdin.end();
    child.kill();
  };
  try {
    const out = await new Promise<string>((resolve, reject) => {
      let text = "";
      child.stdout.on("data", (d: Buffer) => {
        text += d.toString();
        if (text.includes("}")) resolve(text);
      });
      child.once("exit", (code) => reject(new Error(`flood in ${file}: exit ${code}`)));
    });
    return { result: JSON.parse(out) as { open: number; closed: number }, stop };
  } catch (err) {
    stop();
    throw err;
  }
}
