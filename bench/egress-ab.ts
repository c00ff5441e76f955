// Two builds of the egress proxy side by side in the same minutes: each tree's real proxy process
// (started by that tree's own code, as apply starts it) in a member namespace of its own, both
// serving the same server; batches of short connections take turns (the order flips every round),
// so a loaded machine slows both alike. Prints, per tree, the median ms per connection and the
// proxy's CPU (every thread, and its splicer) per connection.
// Usage (as root; both trees built):
//   npx tsx bench/egress-ab.ts OTHER_TREE [rounds=10] [connections=200]
// e.g. a tree of the commit before a change, from `git archive <commit> | tar -x -C /tmp/before`.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const OTHER = path.resolve(process.argv[2] ?? "");
const ROUNDS = Number(process.argv[3] ?? 10);
const CONNS = Number(process.argv[4] ?? 200);
const HERE = fileURLToPath(new URL("..", import.meta.url));
const LOOP = fileURLToPath(new URL("./lib/short-loop.mjs", import.meta.url));

const server = spawn(
  process.execPath,
  [
    "-e",
    `require("http").createServer((q,s)=>s.end("ok")).listen(0,"127.0.0.1",function(){console.log(this.address().port)})`,
  ],
  { stdio: ["ignore", "pipe", "inherit"] },
);
const port = await new Promise<number>((r) => server.stdout.once("data", (d: Buffer) => r(Number(String(d).trim()))));

function cpuNs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    for (const kid of readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").split(" ").filter(Boolean))
      ns += cpuNs(Number(kid));
  }
  return ns;
}

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
  const mod = async <T>(rel: string): Promise<T> => (await import(pathToFileURL(path.join(tree, rel)).href)) as T;
  const state = await mod<typeof import("../src/egress/state.js")>("src/egress/state.ts");
  const sup = await mod<typeof import("../src/egress/supervise.js")>("src/egress/supervise.ts");
  const ns = await mod<typeof import("../src/bridge/netns.js")>("src/bridge/netns.ts");
  const doors = await mod<typeof import("../src/bridge/doors.js")>("src/bridge/doors.ts");
  const root = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-egress-ab-"));
  writeFileSync(path.join(root, "hosts"), "127.0.0.1 bench.test\n");
  const netns = ns.memberNetnsFile(root, "bench", "member");
  const ino = await ns.ensureNetns(netns);
  await state.writeCellFile(root, {
    formatVersion: 1,
    cell: "bench",
    uid: "bench",
    entries: [{ host: "bench.test", ports: [port] }],
    members: [{ identity: "agent:bench", home: "member", netns }],
  });
  const pid = await sup.ensureProxy(root, {
    cidrs: [{ address: "127.0.0.1", prefix: 32 }],
    hostsFile: path.join(root, "hosts"),
  });
  await doors.waitForDoor(state.doorsFile(root), netns, ino, async () => pid, "the egress proxy");
  const stop = async (): Promise<void> => {
    await sup.stopProxy(root);
    await ns.removeNetns(netns);
    rmSync(root, { recursive: true, force: true });
  };
  return { tree, root, netns, pid, ms: [], cpuUs: [], stop };
}

const sides = [await side(OTHER), await side(HERE)];
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
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
