// Two builds of the egress proxy side by side in the same minutes: each tree's real proxy process
// (started by that tree's own code, as apply starts it) in a member namespace of its own, both
// serving the same server; batches of short connections take turns (the order flips every round),
// so a loaded machine slows both alike. Prints, per tree, the median ms per connection and the
// proxy's CPU (every thread, and its splicer) per connection.
// Usage (as root; both trees built):
//   npx tsx bench/egress-ab.ts OTHER_TREE [rounds=10] [connections=200]
// e.g. a tree of the commit before a change, from `git archive <commit> | tar -x -C /tmp/before`.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { cpuNs, egressCode, endCell, median, memberCell, startCellProxy, startServer } from "./lib/egress-setup.js";

const OTHER = path.resolve(process.argv[2] ?? "");
const ROUNDS = Number(process.argv[3] ?? 10);
const CONNS = Number(process.argv[4] ?? 200);
const HERE = fileURLToPath(new URL("..", import.meta.url));
const LOOP = fileURLToPath(new URL("./lib/short-loop.mjs", import.meta.url));

const { proc: server, port } = await startServer();

interface Side {
  tree: string;
  root: string;
  netns: string;
  pid: number;
  ms: number[];
  cpuUs: number[];
  stop: () => Promise<void>;
}

async function side(tree: string): Promise<Side> {
  const code = await egressCode(tree);
  const root = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-egress-ab-"));
  const cell = await memberCell(root, port, code);
  const pid = await startCellProxy(cell, code);
  const stop = async (): Promise<void> => {
    await endCell(cell, code);
    rmSync(root, { recursive: true, force: true });
  };
  return { tree, root, netns: cell.netns, pid, ms: [], cpuUs: [], stop };
}

const sides = [await side(OTHER), await side(HERE)];
console.log(`load ${readFileSync("/proc/loadavg", "utf8").trim()}`);
for (let r = 0; r < ROUNDS; r++) {
  for (const s of r % 2 ? [...sides].reverse() : sides) {
    const cpu0 = cpuNs(s.pid);
    const args = [`--net=${s.netns}`, "--", process.execPath, LOOP, "3128", String(port), "1", String(CONNS)];
    const out = spawnSync("nsenter", args, { encoding: "utf8" });
    if (out.status !== 0) throw new Error(out.stderr);
    s.ms.push(Number(out.stdout.trim()));
    s.cpuUs.push((cpuNs(s.pid) - cpu0) / 1e3 / (CONNS + 20));
  }
}
for (const s of sides)
  console.log(
    `${s.tree}: ${median(s.ms).toFixed(3)} ms per connection (${s.ms.map((x) => x.toFixed(2)).join(" ")}); ` +
      `proxy CPU ${median(s.cpuUs).toFixed(0)} µs per connection (${s.cpuUs.map((x) => x.toFixed(0)).join(" ")})`,
  );
console.log(`load ${readFileSync("/proc/loadavg", "utf8").trim()}`);
for (const s of sides) await s.stop();
server.kill();
