// Benchmark: what the egress path costs next to a direct connection, side by side (the two take
// turns, so a noisy machine slows both alike). The path is a member's: a client inside a network
// namespace made as a member's is (a namespace file, bridge/netns.ts) → 127.0.0.1:3128 there, the
// proxy's own listener (the real proxy process, started as apply starts it; bulk tunnels handed
// to its splicer) → the server on the host's loopback. The direct side runs the same client
// program on the host.
// Usage (as root: namespace files live under /run/lazarus/netns):
//   npx tsx bench/egress.ts [rounds=5] [connections=1000] [MB=100] [paced=1,10]
//   download: curl fetching MB megabytes over HTTP through a CONNECT tunnel (curl -p), vs direct
//   connections: that many sequential connect + one request + close, through CONNECT vs direct
//   paced: the same download again with the server sending at most that many Gbit/s (a real
//     link's rate instead of loopback's memory speed; "-" for none), proxy vs direct each time
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { MEMBER_PORT, doorsFile, writeCellFile } from "../src/egress/state.js";
import { ensureProxy, runningProxy, stopProxy } from "../src/egress/supervise.js";
import { ensureNetns, memberNetnsFile, removeNetns } from "../src/bridge/netns.js";
import { waitForDoor } from "../src/bridge/doors.js";
import { endOnTeardown, killGroup, onTeardown } from "./lib/teardown.js";

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
endOnTeardown(server); // interrupted (SIGINT, SIGTERM): the server, the proxy and the namespace go too
const port = await new Promise<number>((r) =>
  server.stdout.once("data", (d: Buffer) => r(Number(d.toString().trim()))),
);

const netns = memberNetnsFile(root, "bench", "member");
const ino = await ensureNetns(netns);
await writeCellFile(root, {
  formatVersion: 1,
  cell: "bench",
  uid: "bench",
  entries: [{ host: "bench.test", ports: [port] }],
  members: [{ identity: "agent:bench", home: "member", netns }],
});
await ensureProxy(root, { cidrs: [{ address: "127.0.0.1", prefix: 32 }], hostsFile: hosts });
const proxyPid = (await runningProxy(root))?.pid;
const proxyDone = onTeardown(
  () => killGroup(proxyPid),
  async () => {
    await stopProxy(root);
    await removeNetns(netns);
  },
);
await waitForDoor(doorsFile(root), netns, ino, async () => (await runningProxy(root))?.pid, "the egress proxy");
// a command as a member runs it (inside its namespace), or on the host
const inMember = (viaProxy: boolean, file: string, args: string[]): [string, string[]] =>
  viaProxy ? ["nsenter", [`--net=${netns}`, "--", file, ...args]] : [file, args];

function download(viaProxy: boolean, rate = 0): number {
  const args = [
    "-s",
    "-o",
    "/dev/null",
    "-w",
    "%{time_total}",
    ...(viaProxy
      ? ["-p", "--proxy", `http://127.0.0.1:${MEMBER_PORT}`]
      : ["--noproxy", "*", "--resolve", `bench.test:${port}:127.0.0.1`]),
    `http://bench.test:${port}/bytes/${MB * 1_000_000}${rate ? `/${rate}` : ""}`,
  ];
  const r = spawnSync(...inMember(viaProxy, "curl", args), { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`curl failed: ${r.stderr}`);
  return Number(r.stdout);
}

// CONNS connections, each (CONNECT through the proxy, or direct) + GET / + the answer + close, by
// the same client program (bench/lib/short-loop.mjs) on either side; ms per connection.
const LOOP = fileURLToPath(new URL("./lib/short-loop.mjs", import.meta.url));
async function connections(viaProxy: boolean): Promise<number> {
  const at = viaProxy ? MEMBER_PORT : port;
  const args = [LOOP, String(at), String(port), viaProxy ? "1" : "0", String(CONNS)];
  const r = spawnSync(...inMember(viaProxy, process.execPath, args), { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`short connections failed: ${r.stderr}`);
  return Number(r.stdout.trim());
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
await removeNetns(netns);
proxyDone();
rmSync(root, { recursive: true, force: true });
