// Benchmark: what the egress path costs next to a direct connection, side by side (the two take
// turns, so a noisy machine slows both alike). The path is a member's: a client inside a network
// namespace made as a member's is (a namespace file, bridge/netns.ts) → 127.0.0.1:3128 there, the
// proxy's own listener (the real proxy process, started as apply starts it; bulk tunnels handed
// to its splicer) → the server on the host's loopback. The direct side runs the same client
// program on the host. The reference relay (bench/lib/splice-relay.c, built with the host's cc;
// skipped without one) is the ceiling of any relay: one hop, no policy, no CONNECT, splice(2) from
// the first byte; the same client reaches the server through it on the host's loopback.
// Per round it also prints the proxy's CPU (its process and its splicer, every thread) per short
// connection: a figure the machine's load hardly moves, unlike the times.
// Usage (as root: namespace files live under /run/lazarus/netns):
//   npx tsx bench/egress.ts [rounds=5] [connections=1000] [MB=100] [paced=1,10]
//   download: curl fetching MB megabytes over HTTP through a CONNECT tunnel (curl -p), vs direct
//   connections: that many sequential connect + one request + close, through CONNECT vs direct
//   paced: the same download again with the server sending at most that many Gbit/s (a real
//     link's rate instead of loopback's memory speed; "-" for none), proxy vs direct each time
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { MEMBER_PORT } from "../src/egress/state.js";
import { cpuNs, endCell, median, memberCell, startCellProxy, startServer } from "./lib/egress-setup.js";
import { endOnTeardown, killGroup, onTeardown } from "./lib/teardown.js";

const ROUNDS = Number(process.argv[2] ?? 5);
const CONNS = Number(process.argv[3] ?? 1000);
const MB = Number(process.argv[4] ?? 100);
const PACED = (process.argv[5] ?? "1,10")
  .split(",")
  .filter((x) => x && x !== "-")
  .map(Number);
const root = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-egress-"));

// The server, in a process of its own: /bytes/N answers N bytes (/bytes/N/R: at R bytes a second
// at most, sent as the clock allows, in 64 KiB writes), anything else "ok".
const serverSrc = `const http=require("http");const big=Buffer.alloc(1<<20,120);http.createServer((q,s)=>{const m=/^\\/bytes\\/(\\d+)(?:\\/(\\d+))?$/.exec(q.url);if(!m){s.end("ok");return}let n=Number(m[1]);const rate=Number(m[2]||0);const t0=process.hrtime.bigint();let sent=0;s.writeHead(200,{"Content-Length":n});const w=()=>{while(n>0){let c=n>=big.length?big:big.subarray(0,n);if(rate){const may=Number(process.hrtime.bigint()-t0)/1e9*rate-sent;if(may<65536){setTimeout(w,1);return}c=c.subarray(0,Math.min(c.length,Math.floor(may)))}n-=c.length;sent+=c.length;if(!s.write(c)){s.once("drain",w);return}}s.end()};w()}).listen(0,"127.0.0.1",function(){console.log(this.address().port)})`;
const { proc: server, port } = await startServer(serverSrc);
endOnTeardown(server); // interrupted (SIGINT, SIGTERM): the server, the proxy and the namespace go too

// The reference relay, or undefined without a C compiler.
async function startRelay(): Promise<{ port: number; stop: () => void } | undefined> {
  const bin = path.join(root, "splice-relay");
  const src = fileURLToPath(new URL("./lib/splice-relay.c", import.meta.url));
  const cc = spawnSync("cc", ["-O2", "-o", bin, src], { encoding: "utf8" });
  if (cc.status !== 0) {
    console.log(`no reference relay (cc: ${cc.error?.message ?? cc.stderr.trim()})`);
    return undefined;
  }
  const relay = spawn(bin, [String(port)], { stdio: ["ignore", "pipe", "inherit"] });
  const at = await new Promise<number>((r) => relay.stdout.once("data", (d: Buffer) => r(Number(String(d).trim()))));
  return { port: at, stop: () => relay.kill() };
}
const relay = await startRelay();

const cell = await memberCell(root, port);
const { netns } = cell;
let proxyDone = (): void => {};
const proxyPid = await startCellProxy(cell, undefined, (pid) => {
  proxyDone = onTeardown(
    () => killGroup(pid),
    () => endCell(cell),
  );
});
// a command as a member runs it (inside its namespace), or on the host
const inMember = (viaProxy: boolean, file: string, args: string[]): [string, string[]] =>
  viaProxy ? ["nsenter", [`--net=${netns}`, "--", file, ...args]] : [file, args];

// The way a client goes: straight to the server, through the reference relay, or through the proxy.
type Way = "direct" | "relay" | "proxy";
const portFor = (way: Way): number => (way === "relay" ? (relay?.port as number) : port);

function download(way: Way, rate = 0): number {
  const at = portFor(way);
  const args = [
    "-s",
    "-o",
    "/dev/null",
    "-w",
    "%{time_total}",
    ...(way === "proxy"
      ? ["-p", "--proxy", `http://127.0.0.1:${MEMBER_PORT}`]
      : ["--noproxy", "*", "--resolve", `bench.test:${at}:127.0.0.1`]),
    `http://bench.test:${at}/bytes/${MB * 1_000_000}${rate ? `/${rate}` : ""}`,
  ];
  const r = spawnSync(...inMember(way === "proxy", "curl", args), { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`curl failed: ${r.stderr}`);
  return Number(r.stdout);
}

// CONNS connections, each (CONNECT through the proxy, or direct) + GET / + the answer + close, by
// the same client program (bench/lib/short-loop.mjs) on either side; ms per connection.
const LOOP = fileURLToPath(new URL("./lib/short-loop.mjs", import.meta.url));
function connections(way: Way): number {
  const viaProxy = way === "proxy";
  const args = [LOOP, String(viaProxy ? MEMBER_PORT : portFor(way)), String(port), viaProxy ? "1" : "0", String(CONNS)];
  const r = spawnSync(...inMember(viaProxy, process.execPath, args), { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`short connections failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

const pct = (x: number): string => `${(x * 100).toFixed(0)} %`;
const ms = (x: number): string => `${x >= 0 ? "+" : ""}${x.toFixed(3)} ms`;
interface Row {
  d: number; // seconds for MB: direct, relay, proxy
  r: number;
  p: number;
  dConn: number; // ms per connection
  rConn: number;
  pConn: number;
  cpuUs: number; // the proxy's CPU per short connection (µs)
}
const rows: Row[] = [];
console.log(`load ${readFileSync("/proc/loadavg", "utf8").trim()}`);
for (let i = 0; i < ROUNDS; i++) {
  const d = download("direct");
  const r = relay ? download("relay") : Number.NaN;
  const p = download("proxy");
  const dConn = connections("direct");
  const rConn = relay ? connections("relay") : Number.NaN;
  const cpu0 = cpuNs(proxyPid);
  const pConn = connections("proxy");
  const cpuUs = (cpuNs(proxyPid) - cpu0) / 1e3 / (CONNS + 20); // the loop's 20 warm-up connections too
  rows.push({ d, r, p, dConn, rConn, pConn, cpuUs });
  const mbs = (t: number): string => `${(MB / t).toFixed(0)} MB/s`;
  console.log(
    `round ${i + 1}: ${MB} MB direct ${mbs(d)}, relay ${mbs(r)} (${pct(d / r)}), proxy ${mbs(p)} (${pct(d / p)} of direct, ${pct(r / p)} of relay); ` +
      `${CONNS} connections direct ${dConn.toFixed(3)} ms, relay ${ms(rConn - dConn)}, proxy ${ms(pConn - dConn)} each ` +
      `(proxy CPU ${cpuUs.toFixed(0)} µs per connection)`,
  );
}
for (const gbit of PACED) {
  const rate = Math.round((gbit * 1e9) / 8);
  const paced = [];
  for (let i = 0; i < ROUNDS; i++) paced.push({ direct: download("direct", rate), proxy: download("proxy", rate) });
  const mbs = (t: number): string => (MB / t).toFixed(0);
  console.log(
    `paced at ${gbit} Gbit/s (${(rate / 1e6).toFixed(0)} MB/s): direct ${paced.map((x) => mbs(x.direct)).join(", ")} MB/s; proxy ${paced.map((x) => mbs(x.proxy)).join(", ")} MB/s; median ${pct(median(paced.map((x) => x.direct / x.proxy)))} of direct`,
  );
}
const med = (f: (x: Row) => number): number => median(rows.map(f));
console.log(
  `median: throughput relay ${pct(med((x) => x.d / x.r))} of direct, proxy ${pct(med((x) => x.d / x.p))} of direct ` +
    `(${pct(med((x) => x.r / x.p))} of relay); added per connection relay ${ms(med((x) => x.rConn - x.dConn))}, ` +
    `proxy ${ms(med((x) => x.pConn - x.dConn))}; proxy CPU ${med((x) => x.cpuUs).toFixed(0)} µs per connection ` +
    `(load ${readFileSync("/proc/loadavg", "utf8").trim()})`,
);

server.kill();
relay?.stop();
await endCell(cell);
proxyDone();
rmSync(root, { recursive: true, force: true });
