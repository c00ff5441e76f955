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
//   [--streams 200] [--events 80] [--gap-ms 25] [--first-ms 250] [--phase-s 20]
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

const { values: opt } = parseArgs({
  options: {
    mode: { type: "string", default: "both" },
    rounds: { type: "string", default: "3" },
    streams: { type: "string", default: "200" },
    events: { type: "string", default: "80" },
    "gap-ms": { type: "string", default: "25" },
    "first-ms": { type: "string", default: "250" },
    "phase-s": { type: "string", default: "20" },
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

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve) => child.stdout?.once("data", (d: Buffer) => resolve(d.toString().trim())));
}

// CPU (user + system) a process has used so far, in ms.
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

const loadavg = (): string => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

async function startStandin(): Promise<string> {
  const args = [String(SHAPE.events), String(SHAPE.gapMs), String(SHAPE.firstMs)];
  const s = spawn(process.execPath, ["--import", "tsx", "bench/lib/gateway-standin.ts", KEY, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(s);
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

// The gateway of a fresh state dir serving one cell whose member holds `token`; its port and pid.
async function startGateway(provider: string, token: string): Promise<{ port: number; pid: number }> {
  mkdirSync(path.join(root, "secrets", "so"), { recursive: true });
  writeFileSync(path.join(root, "secrets", "so", "key"), KEY);
  writeFileSync(
    path.join(root, "providers.yaml"),
    `providers:\n  - {name: so, api: openai, baseUrl: "${provider}/v1", keyFile: so/key}\n`,
  );
  const member = { identity: "agent:bench", home: "bench", tokenDigest: tokenDigest(token), portfolio: portfolio() };
  const cell: GatewayCellFile = { formatVersion: 1, cell: "bench", uid: "bench", members: [member] };
  const state = path.join(root, "state");
  mkdirSync(gatewayCellsDir(state), { recursive: true });
  writeFileSync(path.join(gatewayCellsDir(state), "bench.json"), JSON.stringify(cell));
  const settings: GatewaySettings = {
    providersFile: path.join(root, "providers.yaml"),
    secretsDir: path.join(root, "secrets"),
  };
  writeFileSync(gatewaySettingsFile(state), JSON.stringify(settings));
  const extra = process.env.BENCH_GATEWAY_NODE_ARGS?.split(" ").filter(Boolean) ?? []; // e.g. --cpu-prof
  const gw = spawn(process.execPath, [...extra, "dist/gateway/main.js", state], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  children.push(gw);
  for (let i = 0; i < 200; i++) {
    await sleep(50);
    try {
      const rec = JSON.parse(readFileSync(path.join(state, "gateway", "gateway.json"), "utf8")) as { port: number };
      return { port: rec.port, pid: gw.pid as number };
    } catch {
      // not listening yet
    }
  }
  throw new Error("the gateway did not start (see its stderr above)");
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

async function runBurst(direct: string, viaGw: string, token: string, gwPid: number): Promise<void> {
  const added: { first: number; total: number }[] = [];
  for (let r = 1; r <= ROUNDS; r++) {
    const d = await burst(direct, KEY, N);
    const c0 = cpuMs(gwPid);
    const g = await burst(viaGw, token, N);
    const cpu = `gateway CPU ${((cpuMs(gwPid) - c0) / N).toFixed(2)} ms/call`;
    added.push(report(`burst round ${r}: ${N} streams fired at once`, side(d), side(g), cpu));
  }
  summary("burst", added);
}

async function runSteady(direct: string, viaGw: string, token: string, gwPid: number): Promise<void> {
  const added: { first: number; total: number }[] = [];
  for (let r = 1; r <= ROUNDS; r++) {
    const d = await steady(direct, KEY, N, PHASE_MS, STREAM_MS);
    const c0 = cpuMs(gwPid);
    const g = await steady(viaGw, token, N, PHASE_MS, STREAM_MS);
    const cpu = `gateway CPU ${((cpuMs(gwPid) - c0) / g.calls).toFixed(2)} ms/call over ${g.calls} calls`;
    const label = `steady round ${r}: ${N} streams open for ${PHASE_MS / 1000} s`;
    added.push(report(label, side(d.timings), side(g.timings), cpu));
  }
  summary("steady", added);
}

function summary(mode: string, added: { first: number; total: number }[]): void {
  const med = (xs: number[]): number => stats(xs).p50;
  console.log(
    `${mode}: median over ${added.length} rounds of the added p50: ${sf(med(added.map((a) => a.first)))} ms to the ` +
      `first byte, ${sf(med(added.map((a) => a.total)))} ms per call (load ${loadavg()})\n`,
  );
}

try {
  console.log(
    `shape: ${SHAPE.events} text events ${SHAPE.gapMs} ms apart after ${SHAPE.firstMs} ms (${STREAM_MS} ms a stream); ` +
      `${N} streams; load ${loadavg()}; ${os.cpus().length} cpus`,
  );
  const provider = await startStandin();
  const token = mintToken();
  const gw = await startGateway(provider, token);
  const direct = `${provider}/v1/chat/completions`;
  const viaGw = `http://127.0.0.1:${gw.port}/v1/chat/completions`;
  await burst(direct, KEY, N); // open both paths' connections
  await burst(viaGw, token, N);
  if (opt.mode !== "steady") await runBurst(direct, viaGw, token, gw.pid);
  if (opt.mode !== "burst") await runSteady(direct, viaGw, token, gw.pid);
} finally {
  for (const c of children) c.kill("SIGTERM");
  await sleep(300); // a profiled gateway writes its profile on the way out
  rmSync(root, { recursive: true, force: true });
}
