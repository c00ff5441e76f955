// Benchmark: what the egress path costs next to a direct connection, side by side (the two take
// turns, so a noisy machine slows both alike). The path is a member's: client → the forwarder
// (perl, as inside a member's namespace; here on the host's loopback) → the proxy's unix socket →
// the proxy process (the real one, started as apply starts it) → the server.
// Usage (as root: the proxy's sockets live under /run/lazarus):
//   npx tsx bench/egress.ts [rounds=5] [connections=1000] [MB=100] [paced=1,10]
//   download: curl fetching MB megabytes over HTTP through a CONNECT tunnel (curl -p), vs direct
//   connections: that many sequential connect + one request + close, through CONNECT vs direct
//   paced: the same download again with the server sending at most that many Gbit/s (a real
//     link's rate instead of loopback's memory speed; "-" for none), proxy vs direct each time
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { shortRequest } from "./lib/short-request.js";
import { setTimeout as sleep } from "node:timers/promises";
import { PERL_FORWARDER } from "../src/egress/forwarder-perl.js";
import { SOCKET_NAME, memberSocketDir, writeCellFile } from "../src/egress/state.js";
import { ensureProxy, stopProxy, waitForSocket } from "../src/egress/supervise.js";

const ROUNDS = Number(process.argv[2] ?? 5);
const CONNS = Number(process.argv[3] ?? 1000);
const MB = Number(process.argv[4] ?? 100);
const PACED = (process.argv[5] ?? "1,10")
  .split(",")
  .filter((x) => x && x !== "-")
  .map(Number);
const root = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-egress-"));
const hosts = path.join(root, "hosts");
writeFileSync(hosts, "127.0.0.1 bench.test\n");

// The server, in a process of its own: /bytes/N answers N bytes (/bytes/N/R: at R bytes a second
// at most, sent as the clock allows, in 64 KiB writes), anything else "ok".
const serverSrc = `const http=require("http");const big=Buffer.alloc(1<<20,120);http.createServer((q,s)=>{const m=/^\\/bytes\\/(\\d+)(?:\\/(\\d+))?$/.exec(q.url);if(!m){s.end("ok");return}let n=Number(m[1]);const rate=Number(m[2]||0);const t0=process.hrtime.bigint();let sent=0;s.writeHead(200,{"Content-Length":n});const w=()=>{while(n>0){let c=n>=big.length?big:big.subarray(0,n);if(rate){const may=Number(process.hrtime.bigint()-t0)/1e9*rate-sent;if(may<65536){setTimeout(w,1);return}c=c.subarray(0,Math.min(c.length,Math.floor(may)))}n-=c.length;sent+=c.length;if(!s.write(c)){s.once("drain",w);return}}s.end()};w()}).listen(0,"127.0.0.1",function(){console.log(this.address().port)})`;
const server = spawn(process.execPath, ["-e", serverSrc], { stdio: ["ignore", "pipe", "inherit"] });
const port = await new Promise<number>((r) =>
  server.stdout.once("data", (d: Buffer) => r(Number(d.toString().trim()))),
);

const dir = memberSocketDir(root, "bench", "member");
await writeCellFile(root, {
  formatVersion: 1,
  cell: "bench",
  uid: "bench",
  entries: [{ host: "bench.test", ports: [port] }],
  members: [{ identity: "agent:bench", home: "member", socketDir: dir }],
});
await ensureProxy(root, { cidrs: [{ address: "127.0.0.1", prefix: 32 }], hostsFile: hosts });
await waitForSocket(dir);
const fwdPort = await new Promise<number>((r) => {
  const s = net.createServer().listen(0, "127.0.0.1", () => {
    const p = (s.address() as net.AddressInfo).port;
    s.close(() => r(p));
  });
});
spawnSync("perl", ["-e", PERL_FORWARDER, String(fwdPort), path.join(dir, SOCKET_NAME), String(process.pid)], {
  stdio: "inherit",
}); // returns once it listens; ends with this process

function download(viaProxy: boolean, rate = 0): number {
  const args = [
    "-s",
    "-o",
    "/dev/null",
    "-w",
    "%{time_total}",
    ...(viaProxy
      ? ["-p", "--proxy", `http://127.0.0.1:${fwdPort}`]
      : ["--noproxy", "*", "--resolve", `bench.test:${port}:127.0.0.1`]),
    `http://bench.test:${port}/bytes/${MB * 1_000_000}${rate ? `/${rate}` : ""}`,
  ];
  const r = spawnSync("curl", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`curl failed: ${r.stderr}`);
  return Number(r.stdout);
}

// One connection: (CONNECT through the forwarder, or direct) + GET / + wait for the answer + close.
function once(viaProxy: boolean): Promise<void> {
  return shortRequest(viaProxy ? fwdPort : port, port, viaProxy);
}

async function connections(viaProxy: boolean): Promise<number> {
  const t = process.hrtime.bigint();
  for (let i = 0; i < CONNS; i++) await once(viaProxy);
  return Number(process.hrtime.bigint() - t) / 1e6 / CONNS;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const rows: { direct: number; proxy: number; dConn: number; pConn: number }[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const direct = download(false);
  const proxy = download(true);
  const dConn = await connections(false);
  const pConn = await connections(true);
  rows.push({ direct, proxy, dConn, pConn });
  console.log(
    `round ${r + 1}: ${MB} MB direct ${(MB / direct).toFixed(0)} MB/s, proxy ${(MB / proxy).toFixed(0)} MB/s (${((direct / proxy) * 100).toFixed(0)} %); ${CONNS} connections direct ${dConn.toFixed(3)} ms, proxy ${pConn.toFixed(3)} ms each (+${(pConn - dConn).toFixed(3)} ms)`,
  );
}
for (const gbit of PACED) {
  const rate = Math.round((gbit * 1e9) / 8);
  const paced = [];
  for (let r = 0; r < ROUNDS; r++) paced.push({ direct: download(false, rate), proxy: download(true, rate) });
  const mbs = (t: number): string => (MB / t).toFixed(0);
  console.log(
    `paced at ${gbit} Gbit/s (${(rate / 1e6).toFixed(0)} MB/s): direct ${paced.map((x) => mbs(x.direct)).join(", ")} MB/s; proxy ${paced.map((x) => mbs(x.proxy)).join(", ")} MB/s; median ${(median(paced.map((x) => x.direct / x.proxy)) * 100).toFixed(0)} % of direct`,
  );
}
const ratio = median(rows.map((x) => x.direct / x.proxy));
const added = median(rows.map((x) => x.pConn - x.dConn));
console.log(
  `median: proxy throughput ${(ratio * 100).toFixed(0)} % of direct; ${added.toFixed(3)} ms added per connection (load ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")})`,
);

server.kill();
await stopProxy(root);
await sleep(1100); // the forwarder ends within a second of this process; its socket dir goes with it
rmSync(dir, { recursive: true, force: true });
rmSync(root, { recursive: true, force: true });
