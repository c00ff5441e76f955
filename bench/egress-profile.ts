// Where the egress proxy's time goes per short connection: the real proxy process (dist/, as
// apply starts it, but with node's --cpu-prof) serving N short connections from a member's
// namespace (bench/lib/short-loop.mjs, as bench/egress.ts runs them); then its CPU profile,
// summarised by bench/lib/cpuprof-summary.mjs. Optionally `strace -c -f` on the proxy meanwhile.
// Usage (as root; build first):  npx tsx bench/egress-profile.ts [connections=3000] [strace=0|1]
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { MEMBER_PORT, writeSettingsFile } from "../src/egress/state.js";
import { runningProxy } from "../src/egress/supervise.js";
import { endCell, memberCell, startServer, waitForProxyDoor } from "./lib/egress-setup.js";

const CONNS = Number(process.argv[2] ?? 3000);
const STRACE = process.argv[3] === "1";
const KEEP = path.join(os.tmpdir(), "lazarus-egress-proxy.cpuprofile"); // kept for a closer look
const root = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-egress-prof-"));
const profDir = path.join(root, "prof");
const { proc: server, port } = await startServer();
const cell = await memberCell(root, port);
const { netns } = cell;
await writeSettingsFile(root, cell.settings);
const main = fileURLToPath(new URL("../dist/egress/main.js", import.meta.url));
const proxy = spawn(process.execPath, ["--cpu-prof", `--cpu-prof-dir=${profDir}`, main, root], {
  stdio: "inherit",
  env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LAZARUS_EGRESS_PROXY: path.resolve(root) },
});
await waitForProxyDoor(cell, async () => (await runningProxy(root))?.pid);
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
await endCell(cell); // the proxy has ended already: this removes the namespace
rmSync(root, { recursive: true, force: true });
