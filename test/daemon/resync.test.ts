// The daemon's periodic resync observes only the cells that may have changed since it last looked
// (src/daemon/fingerprint.ts), yet still catches what changed behind its back: a member killed
// by someone else, a record rewritten by another command. The clock tick is set to once a year
// here, so only the resync can notice; the members are started by `lazarus apply`, not by the
// daemon, so no exit event reaches it either.
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AGENT,
  cellYaml,
  cleanup,
  configDir,
  freePort,
  isAlive,
  killAll,
  lazarus,
  readRecord,
  startWatching,
  stopWatches,
  tempDir,
  waitFor,
  type Watch,
} from "../helpers.js";

let state: string;
let config: string;
let other: string;
let port: number;
let w: Watch;

const cell = (name: string, ttl: string) =>
  cellYaml({ name, ttl, members: [{ identity: "agent:allegro", command: ["node", AGENT] }] });
const live = (name: string) => path.join(state, "cells", name);
const running = (name: string) => {
  const m = readRecord(live(name)).members[0];
  return m !== undefined && m.status === "running" && isAlive(m.pid, m.startTime);
};

const ledger = () =>
  readFileSync(path.join(state, "ledger.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { cell: string; action: string; details?: { ttlMs?: number } });

async function resyncCounts(): Promise<{ skipped: number; observed: number; fulls: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
  return {
    skipped: value(/^lazarus_resync_cells_total\{outcome="skipped"\} (\d+)/m),
    observed: value(/^lazarus_resync_cells_total\{outcome="observed"\} (\d+)/m),
    fulls: value(/^lazarus_reconcile_duration_seconds_count\{scope="full"\} (\d+)/m),
  };
}

// Resolves after `n` more full resyncs have finished.
async function resyncs(n: number): Promise<void> {
  const start = (await resyncCounts()).fulls;
  for (;;) {
    if ((await resyncCounts()).fulls >= start + n) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  state = tempDir("lazarus-resync-state-");
  config = configDir({
    "cells.d/a.yaml": cell("a", "4h"),
    "cells.d/b.yaml": cell("b", "4h"),
    "cells.d/c.yaml": cell("c", "4h"),
  });
  other = configDir({
    "cells.d/a.yaml": cell("a", "4h"),
    "cells.d/b.yaml": cell("b", "6h"),
    "cells.d/c.yaml": cell("c", "4h"),
  });
  const applied = await lazarus(["apply", "--yes", "--config", config, "--state-dir", state]);
  expect(applied.exitCode, applied.stderr).toBe(0);
  port = await freePort();
  w = await startWatching([
    "--config",
    config,
    "--state-dir",
    state,
    "--metrics-port",
    String(port),
    "--tick",
    "0 0 0 1 1 *",
    "--resync",
    "1s",
    "--log-level",
    "debug",
  ]);
}, 60_000);

afterAll(async () => {
  await stopWatches();
  killAll(state);
  cleanup(state, config, other);
});

describe("the daemon's resync", () => {
  it("skips cells that did not change since it last observed them", async () => {
    await resyncs(2); // the first resync after start may still observe (nothing was fingerprinted yet)
    const before = await resyncCounts();
    await resyncs(2);
    const after = await resyncCounts();
    expect(after.skipped - before.skipped).toBeGreaterThanOrEqual(6); // 3 cells, 2 resyncs
    expect(after.observed).toBe(before.observed);
    for (const n of ["a", "b", "c"]) expect(running(n)).toBe(true);
  });

  it("notices a member killed behind its back, and restarts it", async () => {
    const m = readRecord(live("a")).members[0]!;
    process.kill(-(m.pid as number), "SIGKILL");
    await waitFor(() => readRecord(live("a")).members[0]!.pid !== m.pid && running("a"), 30_000);
    expect(running("b") && running("c")).toBe(true);
  }, 40_000);

  it("notices a record another command rewrote, and converges it back", async () => {
    const b = readRecord(live("b"));
    const seq = ledger().length;
    // (the lock wait covers a reconcile of the daemon's that a loaded host makes long)
    const changed = await lazarus(["apply", "--yes", "--config", other, "--state-dir", state, "--lock-timeout", "60s"]);
    expect(changed.exitCode, changed.stderr).toBe(0);
    // The apply rewrote b's record to 6h: its ledger entry says so. The record itself may already
    // be back at 4h when the apply has exited (the daemon resyncs every second, and a loaded host
    // can hold the apply's exit longer than that), so it is not read here.
    const renews = () =>
      ledger()
        .slice(seq)
        .filter((e) => e.cell === "b" && e.action === "renew");
    expect(renews()[0]?.details?.ttlMs).toBe(6 * 3_600_000);
    // The daemon's renew back to 4h: the record, and its ledger entry (appended after the record
    // is saved, so both are waited for).
    const back = () =>
      readRecord(live("b")).ttlMs === 4 * 3_600_000 && renews().at(-1)?.details?.ttlMs === 4 * 3_600_000;
    await waitFor(back, 60_000);
    expect(renews().length).toBeGreaterThanOrEqual(2);
    expect(readRecord(live("b")).members[0]!.pid).toBe(b.members[0]!.pid);
  }, 120_000);

  it("observes everything again on SIGHUP", async () => {
    await resyncs(1);
    const before = await resyncCounts();
    w.child.kill("SIGHUP");
    await resyncs(1);
    const after = await resyncCounts();
    expect(after.observed - before.observed).toBeGreaterThanOrEqual(3);
  });
});
