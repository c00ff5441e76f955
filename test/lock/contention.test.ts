// 8 processes × 200 rounds on one lock, some holders SIGKILLed while holding: never two holders.
import { spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT, cleanup, tempDir } from "../helpers.js";

const PROCS = 8;
const ROUNDS = Number(process.env.LOCK_ROUNDS ?? 200);
const WORKER = path.join(ROOT, "test", "fixtures", "lock-worker.mjs");
const dir = tempDir("lazarus-lock-");
const BUDGET_MS = 80_000; // a lock that livelocks fails here instead of hanging
const started = new Set<number>();
let expired = false;

function killStarted(): void {
  for (const pid of started) {
    try {
      process.kill(pid, "SIGKILL"); // only our own workers, by pid
    } catch {
      // ended
    }
  }
}

afterAll(() => {
  killStarted();
  cleanup(dir);
});

type Line = { what: string; slot: string; pid: string };
const readLog = (log: string): Line[] =>
  existsSync(log)
    ? readFileSync(log, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => {
          const [what = "", slot = "", pid = ""] = l.split(" ");
          return { what, slot, pid };
        })
    : [];

// Run one worker process to its end; resolves with how it ended.
function runWorker(
  lock: string,
  log: string,
  slot: number,
  rounds: number,
  dieAt: number,
): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [WORKER, lock, log, String(slot), String(rounds), String(dieAt)], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    if (child.pid) started.add(child.pid);
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("exit", (code, signal) => {
      if (child.pid) started.delete(child.pid);
      resolve({ code, signal, stderr });
    });
  });
}

// One slot: worker processes until ROUNDS rounds are done; slots 0-3 lose two holders to SIGKILL.
async function runSlot(lock: string, log: string, slot: number): Promise<number> {
  const kills = slot < 4 ? [Math.floor(ROUNDS * (0.15 + slot * 0.05)), Math.floor(ROUNDS * (0.6 + slot * 0.05))] : [];
  let done = 0;
  let killed = 0;
  while (done < ROUNDS && !expired) {
    const next = kills.find((k) => k >= done);
    const r = await runWorker(lock, log, slot, ROUNDS - done, next === undefined ? -1 : next - done);
    if (expired) break;
    if (r.signal !== "SIGKILL" && r.code !== 0) throw new Error(`worker ${slot} failed: ${r.stderr}`);
    if (r.signal === "SIGKILL") killed++;
    done = readLog(log).filter((l) => l.slot === String(slot) && l.what !== "enter").length;
  }
  return killed;
}

// Rounds in which a holder entered while another was still inside.
export function overlaps(lines: Line[]): number {
  const inside = new Set<string>();
  let n = 0;
  for (const l of lines) {
    if (l.what === "enter") {
      if (inside.size > 0) n++;
      inside.add(l.pid);
    } else inside.delete(l.pid);
  }
  return n;
}

describe("the state-dir lock under contention", () => {
  it(`admits one holder at a time: ${PROCS} processes × ${ROUNDS} rounds, holders killed while holding`, async () => {
    const lock = path.join(dir, "lazarus.lock");
    const log = path.join(dir, "rounds.log");
    writeFileSync(log, "");
    const t0 = Date.now();
    const timer = setTimeout(() => {
      expired = true;
      killStarted();
    }, BUDGET_MS);
    const killed = await Promise.all(Array.from({ length: PROCS }, (_, slot) => runSlot(lock, log, slot))).finally(() =>
      clearTimeout(timer),
    );
    const lines = readLog(log);
    const n = overlaps(lines);
    console.log(
      `lock contention: ${lines.filter((l) => l.what === "enter").length} rounds, ${killed.reduce((a, b) => a + b, 0)} holders killed, ${n} overlapping, ${Date.now() - t0} ms${expired ? " (stopped: no progress within the budget)" : ""}`,
    );
    expect(expired, "every round finished within the budget (no livelock)").toBe(false);
    expect(killed.reduce((a, b) => a + b, 0)).toBe(8);
    expect(lines.filter((l) => l.what === "enter")).toHaveLength(PROCS * ROUNDS);
    expect(n).toBe(0);
    expect(existsSync(lock)).toBe(false);
    expect(readdirSync(dir)).toEqual(["rounds.log"]); // no guard or temp file left behind
  }, 120_000);
});
