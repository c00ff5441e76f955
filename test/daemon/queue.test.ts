// The daemon's work queue and the one switch from a reconcile's outcome to a queue operation
// (src/daemon/queue.ts, outcome.ts), driven with real timers by a reconcile the test writes: it
// records when each cell ran and answers the outcome the test chose.
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { settle, type Outcome } from "../../src/daemon/outcome.js";
import { WorkQueue } from "../../src/daemon/queue.js";
import { waitFor } from "../helpers.js";

interface Harness {
  queue: WorkQueue;
  runs: { name: string; at: number }[];
  running: Map<string, number>;
  overlap: string[];
  answer: Map<string, Outcome>;
  hold: Map<string, Promise<void>>;
  fulls: number;
}

function harness(backoff = { firstMs: 100, maxMs: 400 }): Harness {
  const h: Harness = {
    runs: [],
    running: new Map(),
    overlap: [],
    answer: new Map(),
    hold: new Map(),
    fulls: 0,
  } as unknown as Harness;
  const t0 = Date.now();
  h.queue = new WorkQueue(
    {
      reconcile: async (names) => {
        const answers = new Map([...names].map((n) => [n, h.answer.get(n) ?? ({ kind: "done" } as Outcome)])); // as the world was when it ran
        for (const n of names) {
          if ((h.running.get(n) ?? 0) > 0) h.overlap.push(n);
          h.running.set(n, (h.running.get(n) ?? 0) + 1);
          h.runs.push({ name: n, at: Date.now() - t0 });
        }
        await Promise.all([...names].map((n) => h.hold.get(n)));
        for (const n of names) h.running.set(n, (h.running.get(n) ?? 1) - 1);
        for (const n of names) settle(h.queue, n, answers.get(n) as Outcome);
      },
      reconcileAll: async () => {
        h.fulls++;
      },
      crashed: (err) => {
        throw err;
      },
    },
    8,
    backoff,
  );
  return h;
}

const times = (h: Harness, name: string) => h.runs.filter((r) => r.name === name).map((r) => r.at);

describe("the daemon's work queue", () => {
  it("runs one reconcile of a cell at a time: an event for a cell at work waits for its end", async () => {
    const h = harness();
    let release: () => void = () => undefined;
    h.hold.set("a", new Promise<void>((r) => (release = r)));
    h.queue.add(["a"]);
    h.queue.add(["b"]); // a batch of its own: a is at work
    await waitFor(() => h.runs.length === 2);
    h.queue.add(["a"]);
    h.queue.add(["b"]);
    await waitFor(() => times(h, "b").length === 2);
    await sleep(50);
    expect(times(h, "a"), "a waits while its first reconcile runs").toHaveLength(1);
    h.hold.delete("a");
    release();
    await waitFor(() => times(h, "a").length === 2);
    await h.queue.idle();
    expect(h.overlap).toEqual([]);
  });

  it("wakes a cell when its reconcile asked (requeueAfter), not before, and a later answer replaces the wake", async () => {
    const h = harness();
    h.answer.set("a", { kind: "done", requeueAfter: 300 });
    h.queue.add(["a"]);
    await waitFor(() => times(h, "a").length === 1);
    h.answer.set("a", { kind: "done" }); // converged: no wake after the second run
    await sleep(150);
    expect(times(h, "a")).toHaveLength(1);
    await waitFor(() => times(h, "a").length === 2, 2000);
    const [first, second] = times(h, "a") as [number, number];
    expect(second - first).toBeGreaterThanOrEqual(290);
    await sleep(500);
    expect(times(h, "a")).toHaveLength(2);
    expect(h.queue.dueAt("a")).toBeUndefined();
  });

  it("retries a transient failure with a backoff that doubles up to its cap, and starts over after a success", async () => {
    const h = harness({ firstMs: 100, maxMs: 400 });
    h.answer.set("a", { kind: "transient", error: "EIO" });
    h.queue.add(["a"]);
    await waitFor(() => times(h, "a").length === 5, 5000);
    h.answer.set("a", { kind: "done" });
    await waitFor(() => times(h, "a").length === 6, 2000);
    const t = times(h, "a");
    const gaps = t.slice(1).map((x, i) => x - (t[i] as number));
    // 100, 200, 400, 400 (capped), 400
    expect(gaps[0]).toBeGreaterThanOrEqual(95);
    expect(gaps[1]).toBeGreaterThanOrEqual(195);
    expect(gaps[2]).toBeGreaterThanOrEqual(395);
    expect(gaps[3]).toBeGreaterThanOrEqual(395);
    expect(gaps[3]).toBeLessThan(700);
    // After the success, the next failure waits the first step again.
    h.answer.set("a", { kind: "transient", error: "EIO" });
    h.queue.add(["a"]);
    await waitFor(() => times(h, "a").length === 8, 2000);
    const u = times(h, "a");
    expect((u[7] as number) - (u[6] as number)).toBeLessThan(300);
    h.queue.stop();
  });

  it("leaves a terminal failure alone until an event names the cell again", async () => {
    const h = harness();
    h.answer.set("a", { kind: "terminal", error: "GRAVEYARD_TAKEN" });
    h.queue.add(["a"]);
    await waitFor(() => times(h, "a").length === 1);
    await sleep(600); // longer than any backoff step of this queue
    expect(times(h, "a")).toHaveLength(1);
    expect(h.queue.dueAt("a")).toBeUndefined();
    h.queue.add(["a"]);
    await waitFor(() => times(h, "a").length === 2);
  });

  it("keeps a terminal failure's next time rule", async () => {
    const h = harness();
    h.answer.set("a", { kind: "terminal", error: "CELL_EXISTS", requeueAfter: 200 });
    h.queue.add(["a"]);
    await waitFor(() => times(h, "a").length === 1);
    h.answer.set("a", { kind: "done" });
    await waitFor(() => times(h, "a").length === 2, 2000);
  });

  it("holds a wake beyond setTimeout's range (a 30-day retention) instead of firing it at once", async () => {
    const h = harness();
    const warnings: string[] = [];
    // Node fires an overlong timer after 1 ms, and says so
    const onWarning = (w: Error): number => warnings.push(w.name);
    process.on("warning", onWarning);
    h.answer.set("a", { kind: "done", requeueAfter: 30 * 24 * 3_600_000 });
    h.queue.add(["a"]);
    await waitFor(() => times(h, "a").length === 1);
    await sleep(300);
    process.off("warning", onWarning);
    expect(warnings).not.toContain("TimeoutOverflowWarning");
    expect(times(h, "a")).toHaveLength(1);
    expect(h.queue.dueAt("a")).toBeGreaterThan(Date.now() + 29 * 24 * 3_600_000);
    h.queue.stop();
  });

  it("lets a full pass claim only the cells not at work, and queues the others for after", async () => {
    const h = harness();
    let release: () => void = () => undefined;
    h.hold.set("a", new Promise<void>((r) => (release = r)));
    h.queue.add(["a"]);
    await waitFor(() => h.running.get("a") === 1);
    const mine = h.queue.claim(["a", "b"]);
    expect([...mine]).toEqual(["b"]);
    h.hold.delete("a");
    release();
    await waitFor(() => times(h, "a").length === 2);
    h.queue.release("b");
    await h.queue.idle();
    expect(h.overlap).toEqual([]);
  });

  it("forgets a cell gone from config and disk: no wake, no backoff left", async () => {
    const h = harness();
    h.answer.set("a", { kind: "transient", error: "EIO" });
    h.queue.add(["a"]);
    await waitFor(() => h.queue.dueAt("a") !== undefined);
    settle(h.queue, "a", { kind: "gone" });
    expect(h.queue.dueAt("a")).toBeUndefined();
    await sleep(300);
    expect(times(h, "a")).toHaveLength(1);
  });
});
