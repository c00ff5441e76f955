// Time rules that other changes must not switch off, and members that must not look dead or hung.
import { describe, expect, it } from "vitest";
import { plan } from "../../src/plan/plan.js";
import { desiredDigest } from "../../src/config/digest.js";
import type { Observed } from "../../src/observe/observe.js";
import { fingerprint } from "../../src/plan/saved.js";
import { ownsProcess } from "../../src/host/proc.js";
import { desiredOf, HOUR, iso, MIN, observedOf, recordOf, T0 } from "./builders.js";

const AGENT = { identity: "agent:allegro", role: "executor", command: ["node", "a.js"] };
const HUMAN = { identity: "human:alexander", role: "director" };
const base = desiredOf({ name: "c1", members: [AGENT, HUMAN] });
const d1 = base.cells.get("c1")!;

function show(p: ReturnType<typeof plan>): string[] {
  return p.actions.map((a) => `${a.kind} ${a.cell}${"member" in a ? ` ${a.member}` : ""}: ${a.reason}`);
}

describe("time rules apply whatever else changed", () => {
  it("closes a cell past its ttl even when its project was edited", () => {
    const p = plan(base, observedOf({ record: recordOf(d1, T0, { project: "Other/repo#2" }) }), T0 + 5 * HOUR);
    expect(show(p)).toEqual([
      "checkpoint c1: final checkpoint before close",
      expect.stringContaining("close c1: ttl 4h expired"),
    ]);
    expect(p.diagnostics[0]).toMatchObject({ severity: "error", field: "spec.project" });
    // the digest recorded on close is the declared one, so the same declaration does not reopen it
    const close = p.actions.find((a) => a.kind === "close");
    expect(close && "desiredDigest" in close ? close.desiredDigest : undefined).toBe(desiredDigest(d1));
  });

  it("closes a cell declared closed even when its backend was edited", () => {
    const closedDecl = desiredOf({ name: "c1", state: "closed", members: [AGENT, HUMAN] });
    const p = plan(closedDecl, observedOf({ record: recordOf(d1, T0, { backend: "sandbox" }) }), T0 + HOUR);
    expect(show(p).map((l) => l.split(":")[0])).toEqual(["checkpoint c1", "close c1"]);
  });
});

describe("the closed-and-unchanged memory outlives the archive", () => {
  const tombstoned = (closedDigest: string | null): Observed => ({
    cells: new Map([["c1", { archives: [], tombstone: { cell: "c1", closedAt: iso(T0), closedDigest } }]]),
  });

  it("does not recreate a cell whose tombstone holds its unchanged declaration", () => {
    const p = plan(base, tombstoned(desiredDigest(d1)), T0 + 40 * 24 * HOUR);
    expect(p.actions).toEqual([]);
    expect(p.diagnostics[0]!.message).toContain("not reopened");
  });

  it("recreates it when the declaration changed since", () => {
    const raised = desiredOf({ name: "c1", ttl: "8h", members: [AGENT, HUMAN] });
    expect(show(plan(raised, tombstoned(desiredDigest(d1)), T0 + 40 * 24 * HOUR))).toEqual([
      expect.stringContaining("create c1"),
    ]);
  });
});

describe("members", () => {
  it("counts a heartbeat left from an earlier run as no older than the start", () => {
    const beating = desiredOf({ name: "c1", members: [{ ...AGENT, heartbeat: "2m" }, HUMAN] });
    const rec = recordOf(beating.cells.get("c1")!, T0);
    const p = plan(beating, observedOf({ record: rec, heartbeats: { "agent:allegro": T0 - HOUR } }), T0 + MIN);
    expect(p.actions).toEqual([]);
    // and it is hung once the start is older than the heartbeat period with no newer beat
    expect(
      show(plan(beating, observedOf({ record: rec, heartbeats: { "agent:allegro": T0 - HOUR } }), T0 + 3 * MIN))[0],
    ).toContain("heartbeat stale");
  });

  it("treats exit 0 under on-failure as finished: no substitute, no cell-down", () => {
    const subs = desiredOf({
      name: "c1",
      extra: "  policy: {allowSubstitutes: true}",
      members: [
        AGENT,
        { identity: "agent:ezra", role: "substitute", command: ["node", "s.js"], replaces: "agent:allegro" },
      ],
    });
    const rec = recordOf(subs.cells.get("c1")!, T0);
    rec.members = rec.members.filter((m) => m.identity === "agent:allegro");
    const exited = observedOf({
      record: rec,
      alive: false,
      exits: { "agent:allegro": { code: 0, at: T0 + MIN } },
      checkpoints: [T0 + 30_000],
    });
    expect(show(plan(subs, exited, T0 + 2 * MIN))).toEqual([
      expect.stringContaining("member-down c1 agent:allegro: agent:allegro: exited with code 0"),
    ]);
    // once recorded as completed, it stays quiet for good (never abandoned)
    const done = recordOf(subs.cells.get("c1")!, T0, {
      members: rec.members.map((m) => ({ ...m, status: "completed" as const, downAt: iso(T0 + MIN), exitCode: 0 })),
    });
    expect(plan(subs, observedOf({ record: done, alive: false }), T0 + 3 * HOUR).actions).toEqual([]);
  });

  it("never proves a pid alive without its start time", () => {
    expect(ownsProcess(process.pid, { startTime: undefined, spawnId: "s1", cell: "c1" })).toBe(false);
  });

  it("looks for a member recorded without a start time by its spawn id instead of downing it", () => {
    const rec = recordOf(d1, T0, {
      members: recordOf(d1).members.map((m) => (m.command ? { ...m, startTime: undefined, spawnId: "s1" } : m)),
    });
    expect(show(plan(base, observedOf({ record: rec, alive: false }), T0 + MIN))).toEqual([
      expect.stringContaining(
        "restart c1 agent:allegro: agent:allegro: recorded without a start time; find it by its spawn id",
      ),
    ]);
  });
});

describe("saved plans", () => {
  it("fingerprint an absent cell like the empty slot observeNames returns", () => {
    expect(fingerprint(undefined)).toBe(fingerprint({ archives: [] }));
  });
});
