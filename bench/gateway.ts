// Benchmark: what the model gateway adds to a call, side by side with calling the provider
// directly (the two take turns each round, so a noisy machine slows both alike). The provider is
// the tests' stand-in in a process of its own (no provider is reachable here), streaming the shape
// given below; the gateway is the real process (dist/gateway/main.js). Two load shapes:
//   burst:  N streamed chat completions fired at the same instant, directly, then through the gateway;
//   steady: N streams open at all times for --phase-s seconds (a new call starts when one ends;
//           the N open over one stream's length, never at once), directly, then through the gateway.
// Each reports per request the time to the first body byte and to the end (median, p90, p99), what
// the gateway adds at the median, the gateway's CPU per call (/proc/<pid>/stat) and the load.
// Usage: npm run build && npx tsx bench/gateway.ts [--mode both|burst|steady] [--rounds 3]
//   [--streams 200] [--events 80] [--gap-ms 25] [--first-ms 250] [--phase-s 20] [--gateway dist/gateway/main.js]…
// --gateway (repeatable): the gateway build(s) to run, each in its own process, taking turns with
// the others and with the direct calls in every round (say, a build of main beside this one).
// --events/--gap-ms/--first-ms shape every stream: the text events, the ms between them, and the
// ms before the first (the model's time to its first token). See bench/README.md for the defaults.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { gatewayCellsDir, gatewaySettingsFile, mintToken, tokenDigest } from "../src/gateway/state.js";
import type { GatewayCellFile, GatewaySettings } from "../src/gateway/state.js";
import { burst, stats, steady, type Stats, type Timing } from "./lib/gateway-load.js";
import { endOnTeardown } from "./lib/teardown.js";

const { values: opt } = parseArgs({
  options: {
    mode: { type: "string", default: "both" },
    rounds: { type: "string", default: "3" },
    streams: { type: "string", default: "200" },
    events: { type: "string", default: "80" },
    "gap-ms": { type: "string", default: "25" },
    "first-ms": { type: "string", default: "250" },
    "phase-s": { type: "string", default: "20" },
    gateway: { type: "string", multiple: true, default: ["dist/gateway/main.js"] },
  },
});
const ROUNDS = Number(opt.rounds);
const N = Number(opt.streams);
const SHAPE = { events: Number(opt.events), gapMs: Number(opt["gap-ms"]), firstMs: Number(opt["first-ms"]) };
const PHASE_MS = Number(opt["phase-s"]) * 1000;
const STREAM_MS = SHAPE.firstMs + SHAPE.events * SHAPE.gapMs;
const KEY = "sk-bench-operator";
const CLK_TCK = 100; // Linux's USER_HZ: /proc/<pid>/stat counts CPU in 1/100 s
const root = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-gateway-"));
const children: ChildProcess[] = [];
let standinPid = 0;

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve) => child.stdout?.once("data", (d: Buffer) => resolve(d.toString().trim())));
}

// CPU a process (or one of its threads: /proc/<pid>/task/<tid>/stat) has used so far, in ms:
// user and system.
function cpuOf(statFile: string): { user: number; sys: number } {
  const f = readFileSync(statFile, "utf8").split(") ")[1]?.split(" ") ?? [];
  return { user: (Number(f[11]) * 1000) / CLK_TCK, sys: (Number(f[12]) * 1000) / CLK_TCK };
}

// The gateway's CPU so far: the whole process's (user + system), and its main thread's (the event
// loop; the rest is libuv's file-write threads, the garbage collector's helpers, a profiler).
function cpuMs(pid: number): { all: number; user: number; sys: number; main: number } {
  const all = cpuOf(`/proc/${pid}/stat`);
  const main = cpuOf(`/proc/${pid}/task/${pid}/stat`);
  return { all: all.user + all.sys, user: all.user, sys: all.sys, main: main.user + main.sys };
}

// CPU per call between two readings: all of it, then user / system and the main thread's share.
function cpuPerCall(a: ReturnType<typeof cpuMs>, b: ReturnType<typeof cpuMs>, calls: number): string {
  const per = (x: number): string => (x / calls).toFixed(2);
  return (
    `gateway CPU ${per(b.all - a.all)} ms/call over ${calls} calls ` +
    `(user ${per(b.user - a.user)}, sys ${per(b.sys - a.sys)}; main thread ${per(b.main - a.main)})`
  );
}

const loadavg = (): string => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

async function startStandin(): Promise<string> {
  const args = [String(SHAPE.events), String(SHAPE.gapMs), String(SHAPE.firstMs)];
  const s = spawn(process.execPath, ["--import", "tsx", "bench/lib/gateway-standin.ts", KEY, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(s);
  standinPid = s.pid as number;
  endOnTeardown(s); // interrupted (SIGINT, SIGTERM): the stand-in ends too
  return firstLine(s);
}

function portfolio(): GatewayCellFile["members"][number]["portfolio"] {
  return {
    name: "bench",
    appliesTo: { agents: [], taskClasses: [] },
    models: [{ model: "gpt-ok", provider: "so" }],
    retries: { attempts: 0, backoffMs: 0, maxRetryAfterMs: 0 },
    cooldown: { allowedFails: 3, windowMs: 60_000, durationMs: 60_000 },
    fallbackOn: ["rate_limit"],
  };
}

interface Gw {
  label: string; // the main.js it runs
  url: string;
  pid: number;
  token: string;
}

// A gateway (main.js of a build) with a fresh state dir serving one cell whose member holds a token.
async function startGateway(provider: string, mainJs: string, n: number): Promise<Gw> {
  mkdirSync(path.join(root, "secrets", "so"), { recursive: true });
  writeFileSync(path.join(root, "secrets", "so", "key"), KEY);
  writeFileSync(
    path.join(root, "providers.yaml"),
    `providers:\n  - {name: so, api: openai, baseUrl: "${provider}/v1", keyFile: so/key}\n`,
  );
  const token = mintToken();
  const member = { identity: "agent:bench", home: "bench", tokenDigest: tokenDigest(token), portfolio: portfolio() };
  const cell: GatewayCellFile = { formatVersion: 1, cell: "bench", uid: "bench", members: [member] };
  const state = path.join(root, `state-${n}`);
  mkdirSync(gatewayCellsDir(state), { recursive: true });
  writeFileSync(path.join(gatewayCellsDir(state), "bench.json"), JSON.stringify(cell));
  const settings: GatewaySettings = {
    providersFile: path.join(root, "providers.yaml"),
    secretsDir: path.join(root, "secrets"),
  };
  writeFileSync(gatewaySettingsFile(state), JSON.stringify(settings));
  const extra = process.env.BENCH_GATEWAY_NODE_ARGS?.split(" ").filter(Boolean) ?? []; // e.g. --cpu-prof
  const gw = spawn(process.execPath, [...extra, mainJs, state], { stdio: ["ignore", "ignore", "inherit"] });
  children.push(gw);
  endOnTeardown(gw);
  for (let i = 0; i < 200; i++) {
    await sleep(50);
    try {
      const rec = JSON.parse(readFileSync(path.join(state, "gateway", "gateway.json"), "utf8")) as { port: number };
      return { label: mainJs, url: `http://127.0.0.1:${rec.port}/v1/chat/completions`, pid: gw.pid as number, token };
    } catch {
      // not listening yet
    }
  }
  throw new Error(`the gateway ${mainJs} did not start (see its stderr above)`);
}

const f = (x: number): string => x.toFixed(1);
const sf = (x: number): string => (x < 0 ? "" : "+") + f(x);
const line = (s: Stats): string => `p50 ${f(s.p50)} p90 ${f(s.p90)} p99 ${f(s.p99)} ms`;

interface Side {
  first: Stats;
  total: Stats;
}

const side = (ts: Timing[]): Side => ({ first: stats(ts.map((t) => t.first)), total: stats(ts.map((t) => t.total)) });

function report(label: string, d: Side, g: Side, cpu: string): { first: number; total: number } {
  const added = { first: g.first.p50 - d.first.p50, total: g.total.p50 - d.total.p50 };
  console.log(
    `${label} (${d.first.n} direct, ${g.first.n} gateway calls timed; ${cpu}; load ${loadavg()})\n` +
      `  first byte  direct ${line(d.first)} | gateway ${line(g.first)} | added at p50 ${sf(added.first)} ms\n` +
      `  whole call  direct ${line(d.total)} | gateway ${line(g.total)} | added at p50 ${sf(added.total)} ms`,
  );
  return added;
}

type Added = Map<string, { first: number; total: number }[]>;

// One kind of load, round by round: directly, then through each gateway (their order turning
// each round), each gateway's numbers against the same round's direct ones.
async function run(
  mode: string,
  direct: string,
  gws: Gw[],
  load: (url: string, auth: string) => Promise<{ timings: Timing[]; calls: number }>,
): Promise<void> {
  const added: Added = new Map(gws.map((g) => [g.label, []]));
  for (let r = 1; r <= ROUNDS; r++) {
    const s0 = cpuMs(standinPid);
    const d = await load(direct, KEY);
    const s1 = cpuMs(standinPid);
    // for scale: a node HTTP server that only writes the events (the stand-in, serving the direct calls)
    console.log(`  direct: the stand-in's ${cpuPerCall(s0, s1, d.calls).replace("gateway ", "")}`);
    for (let k = 0; k < gws.length; k++) {
      const gw = gws[(k + r) % gws.length] as Gw;
      const c0 = cpuMs(gw.pid);
      const g = await load(gw.url, gw.token);
      const cpu = cpuPerCall(c0, cpuMs(gw.pid), g.calls);
      const label = `${mode} round ${r}, ${gw.label}`;
      added.get(gw.label)?.push(report(label, side(d.timings), side(g.timings), cpu));
    }
  }
  summary(mode, added);
}

function summary(mode: string, added: Added): void {
  const med = (xs: number[]): number => stats(xs).p50;
  for (const [label, a] of added) {
    console.log(
      `${mode}, ${label}: median over ${a.length} rounds of the added p50: ${sf(med(a.map((x) => x.first)))} ms ` +
        `to the first byte, ${sf(med(a.map((x) => x.total)))} ms per call (load ${loadavg()})`,
    );
  }
  console.log("");
}

try {
  console.log(
    `shape: ${SHAPE.events} text events ${SHAPE.gapMs} ms apart after ${SHAPE.firstMs} ms (${STREAM_MS} ms a stream); ` +
      `${N} streams; load ${loadavg()}; ${os.cpus().length} cpus`,
  );
  const provider = await startStandin();
  const gws: Gw[] = [];
  for (const mainJs of opt.gateway) gws.push(await startGateway(provider, mainJs, gws.length));
  const direct = `${provider}/v1/chat/completions`;
  await burst(direct, KEY, N); // open every path's connections
  for (const g of gws) await burst(g.url, g.token, N);
  const burstLoad = async (url: string, auth: string): Promise<{ timings: Timing[]; calls: number }> => ({
    timings: await burst(url, auth, N),
    calls: N,
  });
  if (opt.mode !== "steady") await run(`burst (${N} streams fired at once)`, direct, gws, burstLoad);
  const steadyLoad = (url: string, auth: string): ReturnType<typeof steady> =>
    steady(url, auth, N, PHASE_MS, STREAM_MS);
  if (opt.mode !== "burst") await run(`steady (${N} streams open for ${PHASE_MS / 1000} s)`, direct, gws, steadyLoad);
} finally {
  for (const c of children) c.kill("SIGTERM");
  await sleep(300); // a profiled gateway writes its profile on the way out
  rmSync(root, { recursive: true, force: true });
}
