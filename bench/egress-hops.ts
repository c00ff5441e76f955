// Where the egress path's time goes, hop by hop (issue 19's profile): per short connection
// (connect + GET / + answer + close, sequential), and a 100 MB download, for
//   direct        client → server
//   relay         client → a node unix-socket relay (no policy) → server   (the proxy hop alone)
//   proxy         client → the proxy's unix socket (CONNECT)   → server     (the proxy alone)
//   fwd+relay     client → the Perl forwarder → the relay       → server     (the forwarder hop)
//   fwd+proxy     client → the Perl forwarder → the proxy       → server     (a member's path)
// Usage (as root): npx tsx bench/egress-hops.ts [connections=300] [MB=100]
// Downloads: curl fetching MB megabytes over each path (curl --unix-socket for the relay alone).
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { shortRequest } from "./lib/short-request.js";
import { PERL_FORWARDER } from "../src/egress/forwarder-perl.js";
import { SOCKET_NAME, memberSocketDir, writeCellFile } from "../src/egress/state.js";
import { ensureProxy, stopProxy, waitForSocket } from "../src/egress/supervise.js";

const CONNS = Number(process.argv[2] ?? 300);
const MB = Number(process.argv[3] ?? 100);
const root = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-hops-"));
writeFileSync(path.join(root, "hosts"), "127.0.0.1 bench.test\n");
const serverSrc = `const http=require("http");const big=Buffer.alloc(1<<20,120);http.createServer((q,s)=>{const m=/^\\/bytes\\/(\\d+)$/.exec(q.url);if(!m){s.end("ok");return}let n=Number(m[1]);s.writeHead(200,{"Content-Length":n});const w=()=>{while(n>0){const c=n>=big.length?big:big.subarray(0,n);n-=c.length;if(!s.write(c)){s.once("drain",w);return}}s.end()};w()}).listen(0,"127.0.0.1",function(){console.log(this.address().port)})`;
const server = spawn(process.execPath, ["-e", serverSrc], { stdio: ["ignore", "pipe", "inherit"] });
const port = await new Promise<number>((r) =>
  server.stdout.once("data", (d: Buffer) => r(Number(d.toString().trim()))),
);
// A relay without policy, in a process of its own: a unix socket; each connection piped to the server.
const relaySock = path.join(root, "relay.sock");
const relaySrc = `const net=require("net");net.createServer(c=>{const u=net.connect(${port},"127.0.0.1");u.setNoDelay(true);c.pipe(u);u.pipe(c);c.on("error",()=>u.destroy());u.on("error",()=>c.destroy())}).listen(${JSON.stringify(relaySock)},()=>console.log("ok"))`;
const relay = spawn(process.execPath, ["-e", relaySrc], { stdio: ["ignore", "pipe", "inherit"] });
await new Promise((r) => relay.stdout.once("data", r));
const dir = memberSocketDir(root, "hops", "member");
await writeCellFile(root, {
  formatVersion: 1,
  cell: "hops",
  uid: "hops",
  entries: [{ host: "bench.test", ports: [port] }],
  members: [{ identity: "agent:hops", home: "member", socketDir: dir }],
});
await ensureProxy(root, { cidrs: [{ address: "127.0.0.1", prefix: 32 }], hostsFile: path.join(root, "hosts") });
await waitForSocket(dir);
const proxySock = path.join(dir, SOCKET_NAME);
const freePort = (): Promise<number> =>
  new Promise((r) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => r(p));
    });
  });
const forwarder = async (sock: string): Promise<number> => {
  const p = await freePort();
  spawnSync("perl", ["-e", PERL_FORWARDER, String(p), sock, String(process.pid)], { stdio: "inherit" });
  return p;
};
const fwdRelay = await forwarder(relaySock);
const fwdProxy = await forwarder(proxySock);

type To = { tcp?: number; unix?: string; connect: boolean };
const paths: Record<string, To> = {
  direct: { tcp: port, connect: false },
  relay: { unix: relaySock, connect: false },
  proxy: { unix: proxySock, connect: true },
  "fwd+relay": { tcp: fwdRelay, connect: false },
  "fwd+proxy": { tcp: fwdProxy, connect: true },
};
function once(to: To): Promise<void> {
  return shortRequest(to.unix ?? (to.tcp as number), port, to.connect);
}
for (const [name, to] of Object.entries(paths)) {
  const t = process.hrtime.bigint();
  for (let i = 0; i < CONNS; i++) await once(to);
  const ms = Number(process.hrtime.bigint() - t) / 1e6 / CONNS;
  let mbs = "";
  if (to.tcp || !to.connect) {
    // curl cannot send a CONNECT over a unix socket: no download for "proxy"
    const via = to.tcp
      ? to.connect
        ? ["-p", "--proxy", `http://127.0.0.1:${to.tcp}`]
        : ["--noproxy", "*", "--resolve", `bench.test:${to.tcp}:127.0.0.1`]
      : ["--noproxy", "*", "--unix-socket", to.unix as string];
    const args = [
      "-s",
      "-o",
      "/dev/null",
      "-w",
      "%{time_total}",
      ...via,
      `http://bench.test:${to.connect || !to.tcp ? port : to.tcp}/bytes/${MB * 1_000_000}`,
    ];
    const r = spawnSync("curl", args, { encoding: "utf8" });
    mbs = r.status === 0 ? `, ${MB} MB at ${(MB / Number(r.stdout)).toFixed(0)} MB/s` : ` (curl: ${r.stderr})`;
  }
  console.log(`${name.padEnd(10)} ${ms.toFixed(3)} ms per connection${mbs}`);
}
console.log(
  `load ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")}`,
);
server.kill();
relay.kill();
await stopProxy(root);
rmSync(root, { recursive: true, force: true });
setTimeout(() => rmSync(dir, { recursive: true, force: true }), 1100);
