// After one `checkpoint --now <future>` (a what-if time recorded in the ledger), `watch` starts and
// keeps supervising: a killed member is restarted, while the time rules wait (an expired ttl does
// not close its cell) until the clock passes the recorded time. It says so once: a log line, a
// ledger event and a metric. Real daemon, real members.
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  AGENT,
  cellYaml,
  cleanup,
  configDir,
  freePort,
  isAlive,
  lazarus,
  procState,
  readRecord,
  startWatching,
  stopWatches,
  tempDir,
  waitFor,
} from "../helpers.js";

const made: string[] = [];
afterEach(async () => {
  await stopWatches();
  cleanup(...made.splice(0));
});

const HOUR = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();
const agent = (name: string, ttl: string) =>
  cellYaml({ name, ttl, members: [{ identity: "agent:allegro", command: ["node", AGENT] }] });

describe("lazarus watch on a state dir whose ledger is ahead of the clock", () => {
  it("keeps supervising members, holds the time rules, and says so once", async () => {
    const state = tempDir("lazarus-state-");
    const config = configDir({ "cells.d/sup.yaml": agent("sup", "4h"), "cells.d/old.yaml": agent("old", "1h") });
    made.push(state, config);
    const args = ["--config", config, "--state-dir", state];
    const t0 = Date.now();
    expect((await lazarus(["apply", "--yes", ...args, "--now", iso(t0 - 2 * HOUR)])).exitCode).toBe(0); // old's ttl ended an hour ago
    const future = iso(t0 + HOUR);
    const what = await lazarus(["checkpoint", "sup", ...args, "--now", future]);
    expect(what.exitCode, what.stderr).toBe(0);

    const port = await freePort();
    const w = await startWatching([
      ...args,
      "--tick",
      "* * * * * *",
      "--metrics-port",
      String(port),
      "--stop-timeout",
      "2000",
    ]);

    // Supervision goes on: the killed member is restarted (after its 10 s backoff).
    const m = readRecord(path.join(state, "cells", "sup")).members[0]!;
    process.kill(-(m.pid as number), "SIGKILL");
    await waitFor(() => procState(m.pid as number) === undefined || procState(m.pid as number) === "Z", 5000);
    const restarted = () => {
      const n = readRecord(path.join(state, "cells", "sup")).members[0]!;
      return n.pid !== m.pid && n.status === "running" && isAlive(n.pid, n.startTime);
    };
    await waitFor(restarted, 30_000).catch(() => undefined);
    expect(restarted(), w.logs).toBe(true);

    // The time rules wait: old's ttl ended, yet it is not closed.
    expect(readRecord(path.join(state, "cells", "old")).state).toBe("active");
    expect(w.exited()).toBe(false);

    // Said once: one log line, one ledger event, and the metric.
    const said = w.logs.split("\n").filter((l) => l.includes("no time rule"));
    expect(said.length, w.logs).toBe(1);
    expect(said[0]).toContain(future);
    const readLedger = () =>
      readFileSync(path.join(state, "ledger.jsonl"), "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { time: string; action: string; details?: { clock?: string } });
    await waitFor(() => readLedger().some((e) => e.action === "restart"), 10_000); // recorded just after the record is saved
    const ledger = readLedger();
    expect(ledger.filter((e) => e.action === "time-rules-held")).toHaveLength(1);
    // The ledger never goes back in time; the restart notes the clock it happened at.
    const times = ledger.map((e) => Date.parse(e.time));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    const restart = ledger.find((e) => e.action === "restart");
    expect(restart?.time).toBe(future);
    expect(Date.parse(restart?.details?.clock ?? "")).toBeLessThan(Date.parse(future));
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(Number(/^lazarus_time_rules_held_until_timestamp_seconds (\S+)/m.exec(metrics)?.[1])).toBe(
      Date.parse(future) / 1000,
    );
    expect((await lazarus(["ledger", "verify", "--state-dir", state])).exitCode).toBe(0);
  });
});
