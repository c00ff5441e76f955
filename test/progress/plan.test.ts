// The planner's commit-or-abort rules as tables: desired + observed (a recorded clock, evidence
// seen now) + a time → the actions. Pure: no files, no processes, no clock.
import { describe, expect, it } from "vitest";
import { plan } from "../../src/plan/plan.js";
import type { ObservedProgress, ProgressState } from "../../src/progress/types.js";
import { AGENT } from "../helpers.js";
import { T0, desiredOf, iso, observedOf, recordOf } from "../plan/builders.js";

const S = 1000;
const worker = { identity: "agent:worker", role: "executor", command: ["node", AGENT], restart: "always" };
const standIn = { identity: "agent:stand-in", role: "substitute", command: ["node", AGENT], replaces: "agent:worker" };

function world(onStall: string, state: Partial<ProgressState> | undefined, news: string[] = [], subs = false) {
  const desired = desiredOf({
    name: "c",
    members: subs ? [worker, standIn] : [worker],
    extra: `  progress: {slice: 10s, onStall: ${onStall}}${subs ? "\n  policy: {allowSubstitutes: true}" : ""}`,
  });
  const d = desired.cells.get("c")!;
  const rec = recordOf(d, T0);
  rec.members = rec.members.filter((m) => m.role !== "substitute"); // a substitute joins only when needed
  const observed = observedOf({ record: rec, checkpoints: [T0 + 2 * S] });
  const progress: ObservedProgress = {
    ...(state
      ? { state: { formatVersion: 1, since: iso(T0), slices: 0, stalls: [], git: null, artifacts: {}, ...state } }
      : {}),
    git: null,
    artifacts: {},
    news,
    notes: [],
  };
  observed.cells.get("c")!.live!.progress = progress;
  return { desired, observed };
}
const actionsAt = (w: ReturnType<typeof world>, now: number) =>
  plan(w.desired, w.observed, now).actions.map((a) => ({ kind: a.kind, reason: a.reason }));

describe("planning spec.progress", () => {
  it.each([
    ["inside the slice: nothing", {}, [], T0 + 9 * S, []],
    ["past the slice: a stall", {}, [], T0 + 11 * S, ["stall"]],
    ["new evidence now: recorded, no stall", {}, ["commit 1a2b on HEAD"], T0 + 60 * S, ["progress"]],
    ["the clock from the last evidence", { lastEvidenceAt: iso(T0 + 5 * S) }, [], T0 + 14 * S, []],
    ["the clock from the last stall handled", { handledAt: iso(T0 + 20 * S) }, [], T0 + 29 * S, []],
    ["no clock recorded: it starts", undefined, [], T0 + 60 * S, ["progress"]],
  ] as const)("%s", (_why, state, news, now, kinds) => {
    const w = world("notify", state, [...news]);
    expect(actionsAt(w, now).map((a) => a.kind)).toEqual(kinds);
  });

  it("says why and how, per onStall, with the last evidence and the slices completed", () => {
    const last = { lastEvidenceAt: iso(T0 + 1 * S), lastEvidence: "commit 1a2b on HEAD", slices: 3 };
    const at = T0 + 15 * S;
    const reason = (onStall: string, subs = false) => actionsAt(world(onStall, last, [], subs), at)[0]?.reason;
    expect(reason("notify")).toBe(
      "no progress for 14s (slice 10s; last evidence 2026-11-25T12:00:01Z: commit 1a2b on HEAD; 3 slices completed): notify only (agent:worker keeps running)",
    );
    expect(reason("restart")).toMatch(/: restart agent:worker from checkpoint \d+\.tar\.gz$/);
    expect(reason("abort")).toMatch(/: abort: stop agent:worker \(recorded in the ledger and the close log\)$/);
    expect(reason("substitute", true)).toMatch(/: stop agent:worker, summon substitute agent:stand-in$/);
  });

  it("judges only running executors: a member down or restarted this round is not stalled", () => {
    const w = world("restart", {});
    const live = w.observed.cells.get("c")!.live!;
    live.members = live.members.map((m) => ({ ...m, alive: false })); // its process is gone
    const kinds = actionsAt(w, T0 + 60 * S).map((a) => a.kind);
    expect(kinds).toContain("member-down");
    expect(kinds).not.toContain("stall");
  });

  it("keeps an executor aborted for a stall stopped, whatever its restart policy", () => {
    const w = world("abort", {});
    const m = w.observed.cells.get("c")!.live!.members[0]!;
    Object.assign(m, { status: "exited", alive: false, downAt: iso(T0), stalled: { at: iso(T0), outcome: "abort" } });
    const p = plan(w.desired, w.observed, T0 + 3_600 * S);
    expect(p.actions.map((a) => a.kind)).toEqual(["cell-down"]);
    expect(p.pending.map((x) => x.reason).join("\n")).toContain("agent:worker: aborted for no progress");
  });
});
