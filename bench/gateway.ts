// Benchmark: what the model gateway adds to a call, side by side with calling the provider
// directly (the two take turns each round, so a noisy machine slows both alike). The provider is
// the tests' stand-in (no provider is reachable here), streaming four words 5 ms apart; the
// gateway is the real process (dist/gateway/main.js). Each round fires N concurrent streamed chat
// completions directly, then N through the gateway, and compares the medians of the time to the
// first body byte and of the whole call.
// Usage: npm run build && npx tsx bench/gateway.ts [rounds=5] [concurrent=200]
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { gatewayCellsDir, gatewaySettingsFile, mintToken, tokenDigest } from "../src/gateway/state.js";
import type { GatewayCellFile, GatewaySettings } from "../src/gateway/state.js";
import { endOnTeardown } from "./lib/teardown.js";

const ROUNDS = Number(process.argv[2] ?? 5);
const N = Number(process.argv[3] ?? 200);
const KEY = "sk-bench-operator";
const root = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-gateway-"));
const children: ChildProcess[] = [];

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve) => child.stdout?.once("data", (d: Buffer) => resolve(d.toString().trim())));
}

const standin = spawn(process.execPath, ["--import", "tsx", "bench/lib/gateway-standin.ts", KEY], {
  stdio: ["ignore", "pipe", "inherit"],
});
children.push(standin);
endOnTeardown(standin); // interrupted (SIGINT, SIGTERM): the stand-in and the gateway end too
const provider = await firstLine(standin);

mkdirSync(path.join(root, "secrets", "so"), { recursive: true });
writeFileSync(path.join(root, "secrets", "so", "key"), KEY);
writeFileSync(
  path.join(root, "providers.yaml"),
  `providers:\n  - {name: so, api: openai, baseUrl: "${provider}/v1", keyFile: so/key}\n`,
);
const token = mintToken();
const cell: GatewayCellFile = {
  formatVersion: 1,
  cell: "bench",
  uid: "bench",
  members: [
    {
      identity: "agent:bench",
      home: "bench",
      tokenDigest: tokenDigest(token),
      portfolio: {
        name: "bench",
        appliesTo: { agents: [], taskClasses: [] },
        models: [{ model: "gpt-ok", provider: "so" }],
        retries: { attempts: 0, backoffMs: 0, maxRetryAfterMs: 0 },
        cooldown: { allowedFails: 3, windowMs: 60_000, durationMs: 60_000 },
        fallbackOn: ["rate_limit"],
      },
    },
  ],
};
const state = path.join(root, "state");
mkdirSync(gatewayCellsDir(state), { recursive: true });
writeFileSync(path.join(gatewayCellsDir(state), "bench.json"), JSON.stringify(cell));
const settings: GatewaySettings = {
  providersFile: path.join(root, "providers.yaml"),
  secretsDir: path.join(root, "secrets"),
};
writeFileSync(gatewaySettingsFile(state), JSON.stringify(settings));
const gw = spawn(process.execPath, ["dist/gateway/main.js", state], { stdio: ["ignore", "ignore", "inherit"] });
children.push(gw);
endOnTeardown(gw);
let gwPort = 0;
for (let i = 0; i < 100 && !gwPort; i++) {
  await sleep(50);
  try {
    gwPort = (JSON.parse(readFileSync(path.join(state, "gateway", "gateway.json"), "utf8")) as { port: number }).port;
  } catch {
    // not listening yet
  }
}

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
const body = JSON.stringify({ model: "gpt-ok", stream: true, messages: [{ role: "user", content: "hi" }] });

// One streamed call: ms to the first body byte and to the end.
function call(url: string, auth: string): Promise<{ first: number; total: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: "POST", agent, headers: { "content-type": "application/json", authorization: `Bearer ${auth}` } },
      (res) => {
        let first = 0;
        res.on("data", () => void (first ||= performance.now() - t0));
        res.on("end", () =>
          res.statusCode === 200
            ? resolve({ first, total: performance.now() - t0 })
            : reject(new Error(`status ${res.statusCode}`)),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function batch(url: string, auth: string): Promise<{ first: number; total: number }> {
  const rs = await Promise.all(Array.from({ length: N }, () => call(url, auth)));
  return { first: median(rs.map((r) => r.first)), total: median(rs.map((r) => r.total)) };
}

const direct = `${provider}/v1/chat/completions`;
const viaGw = `http://127.0.0.1:${gwPort}/v1/chat/completions`;
await batch(direct, KEY); // warm both paths' connections
await batch(viaGw, token);
const added: { first: number; total: number }[] = [];
try {
  for (let r = 1; r <= ROUNDS; r++) {
    const d = await batch(direct, KEY);
    const g = await batch(viaGw, token);
    added.push({ first: g.first - d.first, total: g.total - d.total });
    console.log(
      `round ${r}: ${N} concurrent streams; first byte direct ${d.first.toFixed(2)} ms, gateway ${g.first.toFixed(2)} ms (+${(g.first - d.first).toFixed(2)}); whole call direct ${d.total.toFixed(2)} ms, gateway ${g.total.toFixed(2)} ms (+${(g.total - d.total).toFixed(2)})`,
    );
  }
  const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  console.log(
    `median over rounds: +${median(added.map((a) => a.first)).toFixed(2)} ms to the first byte, +${median(added.map((a) => a.total)).toFixed(2)} ms per call (load ${load})`,
  );
} finally {
  for (const c of children) c.kill("SIGTERM");
  rmSync(root, { recursive: true, force: true });
}
