// The helpers of a state dir (the model gateway, the egress proxy) are started by whichever
// Lazarus process needs them: an apply and the daemon may ask at the same instant. Here four real
// node processes, each of which has loaded Lazarus and waits at a barrier, ask at once; exactly one
// helper may run afterwards, and every asker must be handed that one.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT, cleanup, tempDir, waitFor } from "../helpers.js";
import { gatewayCellsDir } from "../../src/gateway/state.js";

const RACERS = 4;
const dirs: string[] = [];
const started: number[] = []; // helper pids, stopped after

afterAll(async () => {
  for (const pid of started) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // already gone
    }
  }
  await waitFor(() => started.every((pid) => !live(pid)), 10_000).catch(() => undefined);
  cleanup(...dirs);
});

// Whether pid runs (by /proc state: Z is dead; PID 1 here does not reap).
function live(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

// The live processes of this host whose environment carries mark=stateRoot: the helpers.
function helpers(mark: string, stateRoot: string): number[] {
  const want = `${mark}=${path.resolve(stateRoot)}`;
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .map(Number)
    .filter((pid) => {
      try {
        return live(pid) && readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(want);
      } catch {
        return false;
      }
    });
}

// RACERS processes, each calling `call` (a module-level expression over `mod`, the built module
// at modulePath) once the barrier file exists; what each printed (the helper's pid).
async function race(modulePath: string, call: string): Promise<string[]> {
  const dir = tempDir("lazarus-race-");
  dirs.push(dir);
  const go = path.join(dir, "go");
  const script = (i: number) =>
    [
      `const mod = await import(${JSON.stringify(modulePath)});`,
      `const fs = await import("node:fs");`,
      `fs.writeFileSync(${JSON.stringify(path.join(dir, `ready-${i}`))}, "");`,
      `while (!fs.existsSync(${JSON.stringify(go)})) await new Promise((r) => setTimeout(r, 1));`,
      `const out = await ${call};`,
      `process.stdout.write(String(typeof out === "number" ? out : out.pid));`,
    ].join("\n");
  const runs = Array.from({ length: RACERS }, (_, i) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", script(i)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr.on("data", (b: Buffer) => (err += b.toString()));
    return new Promise<string>((resolve, reject) =>
      child.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`racer ${i} exited ${code}: ${err}`)))),
    );
  });
  await waitFor(
    () => Array.from({ length: RACERS }, (_, i) => existsSync(path.join(dir, `ready-${i}`))).every(Boolean),
    30_000,
  );
  writeFileSync(go, "");
  return Promise.all(runs);
}

describe("a state dir's helpers started by several processes at once", () => {
  it("the model gateway: exactly one runs, and every process is handed it", async () => {
    const state = tempDir("lazarus-race-gw-");
    dirs.push(state);
    mkdirSync(gatewayCellsDir(state), { recursive: true });
    const providers = path.join(state, "..", `${path.basename(state)}-providers.yaml`);
    writeFileSync(providers, 'providers:\n  - {name: so, api: openai, baseUrl: "https://llm.example.org/v1"}\n');
    dirs.push(providers);
    const settings = JSON.stringify({ providersFile: providers });
    const pids = await race(
      path.join(ROOT, "dist", "gateway", "supervise.js"),
      `mod.ensureGateway(${JSON.stringify(state)}, ${settings})`,
    );
    const running = helpers("LAZARUS_MODEL_GATEWAY", state);
    started.push(...running);
    expect(running).toHaveLength(1);
    expect(pids).toEqual(Array(RACERS).fill(String(running[0])));
  }, 60_000);

  it("the egress proxy: exactly one runs, and every process is handed it", async () => {
    const state = tempDir("lazarus-race-egress-");
    dirs.push(state);
    const pids = await race(
      path.join(ROOT, "dist", "egress", "supervise.js"),
      `mod.ensureProxy(${JSON.stringify(state)}, { cidrs: [] })`,
    );
    const running = helpers("LAZARUS_EGRESS_PROXY", state);
    started.push(...running);
    expect(running).toHaveLength(1);
    expect(pids).toEqual(Array(RACERS).fill(String(running[0])));
  }, 60_000);
});
