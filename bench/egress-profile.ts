// Where the egress proxy's time goes per short connection: the real proxy process (dist/, as
// apply starts it, but with node's --cpu-prof) serving N short connections from a member's
// namespace (bench/lib/short-loop.mjs, as bench/egress.ts runs them); then its CPU profile,
// summarised by bench/lib/cpuprof-summary.mjs. Optionally `strace -c -f` on the proxy meanwhile.
// Usage (as root; build first):  npx tsx bench/egress-profile.ts [connections=3000] [strace=0|1]
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { MEMBER_PORT, doorsFile, writeCellFile, writeSettingsFile } from "../src/egress/state.js";
import { runningProxy } from "../src/egress/supervise.js";
import { ensureNetns, memberNetnsFile, removeNetns } from "../src/bridge/netns.js";
import { waitForDoor } from "../src/bridge/doors.js";

const CONNS = Number(process.argv[2] ?? 3000);
const STRACE = process.argv[3] === "1";
const KEEP = path.join(os.tmpdir(), "lazarus-egress-proxy.cpuprofile"); // kept for a closer look
const root = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-egress-prof-"));
const profDir = path.join(root, "prof");
writeFileSync(path.join(root, "hosts"), "127.0.0.1 bench.test\n");
const server = spawn(
  process.execPath,
  [
    "-e",
    `require("http").createServer((q,s)=>s.end("ok")).listen(0,"127.0.0.1",function(){console.log(this.address().port)})`,
  ],
  { stdio: ["ignore", "pipe", "inherit"] },
);
const port = await new Promise<number>((r) => server.stdout.once("data", (d: Buffer) => r(Number(String(d).trim()))));
const netns = memberNetnsFile(root, "bench", "member");
const ino = await ensureNetns(netns);
await writeCellFile(root, {
  formatVersion: 1,
  cell: "bench",
  uid: "bench",
  entries: [{ host: "bench.test", ports: [port] }],
  members: [{ identity: "agent:bench", home: "member", netns }],
});
await writeSettingsFile(root, { cidrs: [{ address: "127.0.0.1", prefix: 32 }], hostsFile: path.join(root, "hosts") });
const main = fileURLToPath(new URL("../dist/egress/main.js", import.meta.url));
const proxy = spawn(process.execPath, ["--cpu-prof", `--cpu-prof-dir=${profDir}`, main, root], {
  stdio: "inherit",
  env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LAZARUS_EGRESS_PROXY: path.resolve(root) },
});
await waitForDoor(doorsFile(root), netns, ino, async () => (await runningProxy(root))?.pid, "the egress proxy");
const tracer = STRACE
  ? spawn("strace", ["-c", "-f", "-p", String(proxy.pid)], { stdio: ["ignore", "inherit", "inherit"] })
  : undefined;
if (tracer) await new Promise((r) => setTimeout(r, 500));
const loop = fileURLToPath(new URL("./lib/short-loop.mjs", import.meta.url));
const r = spawnSync(
  "nsenter",
  [`--net=${netns}`, "--", process.execPath, loop, String(MEMBER_PORT), String(port), "1", String(CONNS)],
  {
    encoding: "utf8",
  },
);
console.log(`${CONNS} connections through the proxy: ${r.stdout.trim()} ms each ${r.stderr}`);
if (tracer) {
  tracer.kill("SIGINT");
  await new Promise((res) => tracer.once("exit", res));
}
proxy.kill("SIGTERM");
await new Promise((res) => proxy.once("exit", res));
server.kill();
const prof = readdirSync(profDir).find((f) => f.endsWith(".cpuprofile"));
if (prof) {
  copyFileSync(path.join(profDir, prof), KEEP);
  console.log(`profile: ${KEEP}`);
  const summary = fileURLToPath(new URL("./lib/cpuprof-summary.mjs", import.meta.url));
  spawnSync(process.execPath, [summary, path.join(profDir, prof), "25"], { stdio: "inherit" });
}
await removeNetns(netns);
rmSync(root, { recursive: true, force: true });
