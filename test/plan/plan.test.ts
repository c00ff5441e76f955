import { describe, expect, it } from "vitest";
import { plan } from "../../src/plan/plan.js";
import { renderPlanText } from "../../src/plan/render/text.js";
import { renderPlanMarkdown } from "../../src/plan/render/markdown.js";
import pc from "picocolors";
import type { Desired } from "../../src/config/types.js";
import type { Observed } from "../../src/observe/observe.js";
import { closedRecordOf, desiredOf, HOUR, iso, MIN, observedOf, recordOf, T0 } from "./builders.js";

const AGENT = { identity: "agent:allegro", role: "executor", command: ["node", "a.js"] };
const HUMAN = { identity: "human:alexander", role: "director" };

const base = desiredOf({ name: "c1", members: [AGENT, HUMAN] });
const d1 = base.cells.get("c1")!;
const none: Desired = { cells: new Map(), portfolios: new Map(), portfoliosHeld: false, quarantined: [], files: [] };
const empty: Observed = { cells: new Map() };
const plain = pc.createColors(false);

type Row = [string, Desired, Observed, number, string[]];

// A record whose agent is down after `failures` failures, down since `at`.
function downed(d: typeof d1, failures: number, at: number, over: Parameters<typeof recordOf>[2] = {}) {
  return recordOf(d, at - HOUR, {
    ...over,
    members: recordOf(d, at - HOUR).members.map((m) =>
      m.command ? { ...m, status: "down" as const, failures, downAt: iso(at), exitCode: 1 } : m,
    ),
  });
}
const beating = desiredOf({ name: "c1", members: [{ ...AGENT, heartbeat: "2m" }, HUMAN] });
const neverBase = desiredOf({ name: "c1", members: [{ ...AGENT, restart: "never" }, HUMAN] });
const hourly = desiredOf({ name: "c1", extra: '  checkpoint: {schedule: "0 * * * *"}', members: [AGENT, HUMAN] });
const subs = desiredOf({
  name: "c1",
  extra: "  policy: {allowSubstitutes: true}",
  members: [
    AGENT,
    { identity: "agent:ezra", role: "substitute", command: ["node", "s.js"], replaces: "agent:allegro" },
  ],
});
const subsCell = subs.cells.get("c1")!;
function downedSub() {
  const rec = recordOf(subsCell, T0 - HOUR);
  rec.members = rec.members
    .filter((m) => m.identity === "agent:allegro")
    .map((m) => ({ ...m, status: "down" as const, failures: 1, downAt: iso(T0), exitCode: 1 }));
  return rec;
}
function withSub() {
  return recordOf(subsCell, T0 - HOUR);
}
function invited(d: typeof d1, at: number) {
  return recordOf(d, at, {
    members: recordOf(d, at).members.map((m) =>
      m.command ? m : { ...m, status: "invited" as const, invitedAt: iso(at), inviteExpiresAt: iso(at + 15 * MIN) },
    ),
  });
}

// desired + observed + now → the actions, as "kind cell [member]: reason fragment".
const rows: Row[] = [
  ["creates a declared cell that does not exist", base, empty, T0, ["create c1"]],
  ["does nothing when the cell matches", base, observedOf({ record: recordOf(d1) }), T0 + HOUR, []],
  ["does not create a cell declared closed", desiredOf({ name: "c1", state: "closed" }), empty, T0, []],
  [
    "checkpoints, then closes, a cell whose declaration was removed",
    none,
    observedOf({ record: recordOf(d1) }),
    T0 + HOUR,
    ["checkpoint c1: final checkpoint before close", "close c1: removed from cells.d"],
  ],
  [
    "closes a cell declared closed",
    desiredOf({ name: "c1", state: "closed", members: [AGENT, HUMAN] }),
    observedOf({ record: recordOf(d1) }),
    T0 + HOUR,
    ["checkpoint c1", "close c1: state: closed"],
  ],
  [
    "closes a cell declared closed with grace 0s, then scrubs it in the same plan (lazarus destroy)",
    desiredOf({ name: "c1", state: "closed", grace: "0s", members: [AGENT, HUMAN] }),
    observedOf({ record: recordOf(d1) }),
    T0 + HOUR,
    ["checkpoint c1", "close c1: state: closed", "scrub c1: grace 0s: deleted right after the close"],
  ],
  [
    "with grace 0s, also scrubs at once a cell that closes on its ttl",
    desiredOf({ name: "c1", grace: "0s", members: [AGENT, HUMAN] }),
    observedOf({ record: recordOf(d1) }),
    T0 + 4 * HOUR,
    ["checkpoint c1", "close c1: ttl 4h expired", "scrub c1: grace 0s"],
  ],
  [
    "closes a cell past its ttl",
    base,
    observedOf({ record: recordOf(d1) }),
    T0 + 4 * HOUR,
    ["checkpoint c1", "close c1: ttl 4h expired"],
  ],
  [
    "renews a cell whose ttl was raised",
    desiredOf({ name: "c1", ttl: "6h", members: [AGENT, HUMAN] }),
    observedOf({ record: recordOf(d1) }),
    T0 + 5 * HOUR,
    ["renew c1: ttl 4h → 6h"],
  ],
  [
    "closes instead of renewing when the new ttl has passed too",
    desiredOf({ name: "c1", ttl: "2h", members: [AGENT, HUMAN] }),
    observedOf({ record: recordOf(d1) }),
    T0 + 3 * HOUR,
    ["checkpoint c1", "close c1: ttl 2h expired"],
  ],
  [
    "invites an added member",
    desiredOf({ name: "c1", members: [AGENT, HUMAN, { identity: "agent:ezra", command: ["x"] }] }),
    observedOf({ record: recordOf(d1) }),
    T0,
    ["invite c1 agent:ezra: member agent:ezra added"],
  ],
  [
    "removes a member no longer declared",
    desiredOf({ name: "c1", members: [AGENT] }),
    observedOf({ record: recordOf(d1) }),
    T0,
    ["remove-member c1 human:alexander"],
  ],
  [
    "turns a role change into a removal and a new invitation",
    desiredOf({ name: "c1", members: [AGENT, { identity: "human:alexander", role: "observer" }] }),
    observedOf({ record: recordOf(d1) }),
    T0,
    [
      "remove-member c1 human:alexander: role of human:alexander changed director → observer",
      "invite c1 human:alexander: re-invited as observer",
    ],
  ],
  [
    "downs a member whose process died, and the cell with it (no executor up)",
    base,
    observedOf({ record: recordOf(d1), alive: false }),
    T0 + MIN,
    ["member-down c1 agent:allegro: process 1000 is gone", "cell-down c1: no executor is up"],
  ],
  [
    "downs a member by its exit code and restarts at once when the backoff already passed",
    base,
    observedOf({ record: recordOf(d1), alive: false, exits: { "agent:allegro": { code: 3, at: T0 + MIN } } }),
    T0 + 2 * MIN,
    [
      "member-down c1 agent:allegro: exited with code 3",
      "restart c1 agent:allegro: restart after backoff 10s (failure 1)",
    ],
  ],
  [
    "waits for the backoff before restarting",
    base,
    observedOf({ record: downed(d1, 1, T0, { state: "downed", downedAt: iso(T0) }), alive: false }),
    T0 + 5000,
    [],
  ],
  [
    "restarts after the backoff",
    base,
    observedOf({ record: downed(d1, 1, T0), alive: false }),
    T0 + 10_000,
    ["restart c1 agent:allegro: backoff 10s"],
  ],
  [
    "doubles the backoff with each failure",
    base,
    observedOf({ record: downed(d1, 3, T0), alive: false }),
    T0 + 39_000,
    ["cell-down c1"],
  ],
  [
    "doubles the backoff with each failure (40s after the third)",
    base,
    observedOf({ record: downed(d1, 3, T0), alive: false }),
    T0 + 40_000,
    ["restart c1 agent:allegro: backoff 40s (failure 3)"],
  ],
  [
    "caps the backoff at 5m",
    base,
    observedOf({ record: downed(d1, 9, T0), alive: false }),
    T0 + 5 * MIN,
    ["restart c1 agent:allegro: backoff 5m (failure 9)"],
  ],
  [
    "resets the failure count after 10 minutes up",
    base,
    observedOf({
      record: recordOf(d1, T0, { members: recordOf(d1).members.map((m) => ({ ...m, failures: 6 })) }),
      alive: false,
      exits: { "agent:allegro": { code: 1, at: T0 + 11 * MIN } },
    }),
    T0 + 11 * MIN + 10_000,
    ["member-down c1 agent:allegro", "restart c1 agent:allegro: (failure 1)"],
  ],
  [
    "does not restart a member that completed under on-failure",
    base,
    observedOf({ record: recordOf(d1), alive: false, exits: { "agent:allegro": { code: 0, at: T0 } } }),
    T0 + HOUR,
    ["member-down c1 agent:allegro: exited with code 0"],
  ],
  [
    "restarts a completed member under always",
    desiredOf({ name: "c1", members: [{ ...AGENT, restart: "always" }, HUMAN] }),
    observedOf({
      record: recordOf(desiredOf({ name: "c1", members: [{ ...AGENT, restart: "always" }, HUMAN] }).cells.get("c1")!),
      alive: false,
      exits: { "agent:allegro": { code: 0, at: T0 } },
    }),
    T0 + HOUR,
    ["member-down c1 agent:allegro", "restart c1 agent:allegro"],
  ],
  [
    "never restarts under never",
    desiredOf({ name: "c1", members: [{ ...AGENT, restart: "never" }, HUMAN] }),
    observedOf({
      record: recordOf(desiredOf({ name: "c1", members: [{ ...AGENT, restart: "never" }, HUMAN] }).cells.get("c1")!),
      alive: false,
      exits: { "agent:allegro": { code: 1, at: T0 } },
    }),
    T0 + HOUR,
    ["member-down c1 agent:allegro: exited with code 1", "cell-down c1"],
  ],
  [
    "downs a live member whose heartbeat is stale",
    beating,
    observedOf({ record: recordOf(beating.cells.get("c1")!), heartbeats: { "agent:allegro": T0 + MIN } }),
    T0 + 4 * MIN,
    ["member-down c1 agent:allegro: heartbeat stale", "cell-down c1"],
  ],
  [
    "keeps a live member whose heartbeat is fresh",
    beating,
    observedOf({ record: recordOf(beating.cells.get("c1")!), heartbeats: { "agent:allegro": T0 + 3 * MIN } }),
    T0 + 4 * MIN,
    [],
  ],
  [
    "revives a downed cell when an executor restarts",
    base,
    observedOf({ record: downed(d1, 1, T0, { state: "downed", downedAt: iso(T0) }), alive: false }),
    T0 + 10_000,
    ["restart c1 agent:allegro", "revive c1"],
  ],
  [
    "closes a cell downed past its downedTimeout as abandoned",
    neverBase,
    observedOf({
      record: recordOf(neverBase.cells.get("c1")!, T0, {
        state: "downed",
        downedAt: iso(T0),
        members: recordOf(neverBase.cells.get("c1")!).members.map((m) =>
          m.command ? { ...m, status: "exited" as const } : m,
        ),
      }),
      alive: false,
    }),
    T0 + HOUR,
    ["checkpoint c1", "close c1: abandoned"],
  ],
  [
    "brings in a substitute while the member it replaces is down",
    subs,
    observedOf({ record: downedSub(), alive: false, checkpoints: [T0 + MIN] }),
    T0 + 2000,
    ["invite c1 agent:ezra: substitute agent:ezra stands in for agent:allegro, which is down (from checkpoint"],
  ],
  [
    "lets the substitute leave when the member it replaces is back",
    subs,
    observedOf({ record: withSub(), alive: true }),
    T0 + 2000,
    ["remove-member c1 agent:ezra: agent:allegro is up again"],
  ],
  [
    "revokes an invitation not accepted in time",
    base,
    observedOf({ record: invited(d1, T0) }),
    T0 + 15 * MIN,
    ["revoke c1 human:alexander: invitation of human:alexander expired"],
  ],
  ["keeps an open invitation", base, observedOf({ record: invited(d1, T0) }), T0 + 14 * MIN, []],
  [
    "checkpoints when the schedule's previous occurrence is newer than the last checkpoint",
    hourly,
    observedOf({ record: recordOf(hourly.cells.get("c1")!, T0), checkpoints: [T0 + 30 * MIN] }),
    T0 + 2 * HOUR + MIN,
    ['checkpoint c1: schedule "0 * * * *" was due at 2026-11-25T14:00:00Z'],
  ],
  [
    "does not checkpoint when the last checkpoint is newer than the previous occurrence",
    hourly,
    observedOf({ record: recordOf(hourly.cells.get("c1")!, T0), checkpoints: [T0 + 2 * HOUR + 30_000] }),
    T0 + 2 * HOUR + MIN,
    [],
  ],
  [
    "does not checkpoint a cell activated after the previous occurrence",
    hourly,
    observedOf({ record: recordOf(hourly.cells.get("c1")!, T0 + 10 * MIN) }),
    T0 + 50 * MIN,
    [],
  ],
  [
    "waits for the schedule's next time after a checkpoint refused for its size",
    hourly,
    observedOf({
      record: recordOf(hourly.cells.get("c1")!, T0, {
        checkpointRefused: { at: iso(T0 + 2 * HOUR + 30_000), error: "refused" },
      }),
      checkpoints: [T0 + 30 * MIN],
    }),
    T0 + 2 * HOUR + MIN,
    [],
  ],
  [
    "checkpoints at the schedule's next time after a refusal",
    hourly,
    observedOf({
      record: recordOf(hourly.cells.get("c1")!, T0, {
        checkpointRefused: { at: iso(T0 + 2 * HOUR + 30_000), error: "refused" },
      }),
      checkpoints: [T0 + 30 * MIN],
    }),
    T0 + 3 * HOUR + MIN,
    ['checkpoint c1: schedule "0 * * * *" was due at 2026-11-25T15:00:00Z'],
  ],
  [
    "finishes an interrupted checkpoint",
    base,
    observedOf({ record: recordOf(d1, T0, { state: "checkpointing" }) }),
    T0 + MIN,
    ["checkpoint c1: resume interrupted checkpoint"],
  ],
  [
    "restarts a member whose command changed",
    desiredOf({ name: "c1", members: [{ ...AGENT, command: ["node", "b.js"] }, HUMAN] }),
    observedOf({ record: recordOf(d1) }),
    T0,
    ["restart c1 agent:allegro: agent:allegro: command changed"],
  ],
  [
    "restarts a member whose env changed",
    desiredOf({ name: "c1", members: [{ ...AGENT, env: { A: "1" } }, HUMAN] }),
    observedOf({ record: recordOf(d1) }),
    T0,
    ["restart c1 agent:allegro: agent:allegro: env changed"],
  ],
  [
    "updates a changed checkpoint compression",
    desiredOf({ name: "c1", extra: "  checkpoint: {compression: gzip}", members: [AGENT, HUMAN] }),
    observedOf({ record: recordOf(d1) }),
    T0,
    ["update c1: checkpoint changed"],
  ],
  [
    "updates a changed checkpoint size bound",
    desiredOf({ name: "c1", extra: "  checkpoint: {maxSize: 2Gi}", members: [AGENT, HUMAN] }),
    observedOf({ record: recordOf(d1) }),
    T0,
    ["update c1: checkpoint changed"],
  ],
  [
    "updates nothing when the checkpoint size bound is as recorded",
    desiredOf({ name: "c1", extra: "  checkpoint: {maxSize: 2Gi}", members: [AGENT, HUMAN] }),
    observedOf({
      record: recordOf(
        desiredOf({ name: "c1", extra: "  checkpoint: {maxSize: 2Gi}", members: [AGENT, HUMAN] }).cells.get("c1")!,
      ),
    }),
    T0,
    [],
  ],
  [
    "updates nothing when the checkpoint compression is as recorded",
    desiredOf({ name: "c1", extra: "  checkpoint: {compression: zstd}", members: [AGENT, HUMAN] }),
    observedOf({
      record: recordOf(
        desiredOf({ name: "c1", extra: "  checkpoint: {compression: zstd}", members: [AGENT, HUMAN] }).cells.get("c1")!,
      ),
    }),
    T0,
    [],
  ],
  [
    "updates changed labels and grace",
    desiredOf({ name: "c1", grace: "1h", members: [AGENT, HUMAN] }),
    observedOf({ record: recordOf(d1) }),
    T0,
    ["update c1: grace changed"],
  ],
  [
    "resurrects a closed cell declared active again within grace",
    base,
    observedOf({ record: closedRecordOf(d1, T0, { closedDigest: null }), place: "graveyard" }),
    T0 + 10 * MIN,
    ["resurrect c1"],
  ],
  [
    "does not reopen a cell that closed on its ttl with the same declaration",
    base,
    observedOf({ record: closedRecordOf(d1, T0), place: "graveyard" }),
    T0 + 10 * MIN,
    [],
  ],
  [
    "reopens a ttl-closed cell when its ttl is raised",
    desiredOf({ name: "c1", ttl: "8h", members: [AGENT, HUMAN] }),
    observedOf({ record: closedRecordOf(d1, T0), place: "graveyard" }),
    T0 + 10 * MIN,
    ["resurrect c1"],
  ],
  [
    "scrubs a closed cell after its grace",
    none,
    observedOf({ record: closedRecordOf(d1, T0), place: "graveyard" }),
    T0 + 30 * MIN,
    ["scrub c1: grace 30m ended"],
  ],
  [
    "keeps a closed cell during its grace",
    none,
    observedOf({ record: closedRecordOf(d1, T0), place: "graveyard" }),
    T0 + 29 * MIN,
    [],
  ],
  [
    "scrubs, then creates afresh, when declared active again after grace",
    desiredOf({ name: "c1", ttl: "5h", members: [AGENT, HUMAN] }),
    observedOf({ record: closedRecordOf(d1, T0, { closedDigest: null }), place: "graveyard" }),
    T0 + HOUR,
    ["scrub c1", "create c1"],
  ],
  [
    "purges an archive entry after retention",
    none,
    observedOf({ record: closedRecordOf(d1, T0, { state: "archived", archivedAt: iso(T0) }), place: "archive" }),
    T0 + 30 * 24 * HOUR,
    ["purge c1: retention 30d ended"],
  ],
  [
    "keeps an archive entry during retention",
    none,
    observedOf({ record: closedRecordOf(d1, T0, { state: "archived", archivedAt: iso(T0) }), place: "archive" }),
    T0 + 29 * 24 * HOUR,
    [],
  ],
  [
    "resumes a create interrupted while preparing",
    base,
    observedOf({ record: recordOf(d1, T0, { state: "preparing" }) }),
    T0,
    ["create c1: resume interrupted create"],
  ],
  [
    "finishes a close interrupted before the move",
    none,
    observedOf({ record: closedRecordOf(d1, T0) }),
    T0 + MIN,
    ["close c1: finish interrupted close"],
  ],
  [
    "finishes an interrupted resurrection",
    base,
    observedOf({ record: closedRecordOf(d1, T0, { closedDigest: null }) }),
    T0 + MIN,
    ["resurrect c1"],
  ],
  [
    "resumes a member start interrupted by a crash",
    base,
    observedOf({
      record: recordOf(d1, T0, {
        members: recordOf(d1).members.map((m) =>
          m.command ? { ...m, status: "starting" as const, pid: undefined } : m,
        ),
      }),
    }),
    T0,
    ["restart c1 agent:allegro: agent:allegro: resume interrupted start"],
  ],
];

function show(actions: ReturnType<typeof plan>["actions"]): string[] {
  return actions.map((a) => `${a.kind} ${a.cell}${"member" in a ? ` ${a.member}` : ""}: ${a.reason}`);
}

describe("the planner", () => {
  it.each(rows)("%s", (_name, desired, observed, now, expected) => {
    const got = show(plan(desired, observed, now).actions);
    expect(got.length).toBe(expected.length);
    expected.forEach((e, i) => {
      const [head, fragment] = e.split(": ", 2) as [string, string | undefined];
      expect(got[i]!.startsWith(`${head}:`)).toBe(true);
      if (fragment) expect(got[i]).toContain(fragment);
    });
  });

  it("shows the backoff remaining while it waits", () => {
    const p = plan(
      base,
      observedOf({ record: downed(d1, 2, T0, { state: "downed", downedAt: iso(T0) }), alive: false }),
      T0 + 5000,
    );
    expect(p.pending).toEqual([
      { cell: "c1", reason: "closes as abandoned at 2026-11-25T13:00:00Z unless an executor comes back" },
      { cell: "c1", member: "agent:allegro", reason: "agent:allegro: restart in 15s (backoff 20s after failure 2)" },
    ]);
  });

  it("holds, and never closes, a cell whose file is quarantined", () => {
    const desired: Desired = {
      cells: new Map(),
      portfolios: new Map(),
      portfoliosHeld: false,
      quarantined: [{ file: "cells.d/test.yaml", names: [] }],
      files: [],
    };
    const p = plan(desired, observedOf({ record: recordOf(d1), alive: false }), T0 + 10 * HOUR);
    expect(p.actions).toEqual([]);
    expect(p.held).toEqual([{ cell: "c1", file: "cells.d/test.yaml" }]);
  });

  it("holds a cell that a broken file still appears to declare, even after it moved files", () => {
    const desired: Desired = {
      cells: new Map(),
      portfolios: new Map(),
      portfoliosHeld: false,
      quarantined: [{ file: "cells.d/new.yaml", names: ["c1"] }],
      files: [],
    };
    const p = plan(desired, observedOf({ record: recordOf(d1) }), T0);
    expect(p.actions).toEqual([]);
    expect(p.held[0]).toEqual({ cell: "c1", file: "cells.d/new.yaml" });
  });

  it("holds, as new, a cell that only a quarantined file declares, and names a quarantined file it cannot read a cell from", () => {
    const desired: Desired = {
      ...none,
      quarantined: [
        { file: "cells.d/fresh.yaml", names: ["fresh"] },
        { file: "cells.d/garbled.yaml", names: [] },
      ],
    };
    const p = plan(desired, empty, T0);
    expect(p.actions).toEqual([]);
    expect(p.held).toEqual([{ cell: "fresh", file: "cells.d/fresh.yaml", new: true }]);
    expect(p.unnamedFiles).toEqual(["cells.d/garbled.yaml"]);
    const text = renderPlanText(p, plain);
    expect(text).not.toContain("The cells match");
    expect(text).toContain(
      "No changes to apply, but 1 cell is held: its file does not load (see the errors above); fix it and plan again.",
    );
    expect(text).toMatch(
      /^ {2}! held\s+fresh\s+cells\.d\/fresh\.yaml is quarantined; the new cell is not created until it loads$/m,
    );
    expect(text).toMatch(
      /^ {2}! held\s+\?\s+cells\.d\/garbled\.yaml is quarantined; no cell could be named from it, and none it declares is created, changed or closed until it loads$/m,
    );
    expect(
      renderPlanText(plan({ ...none, quarantined: [{ file: "cells.d/garbled.yaml", names: [] }] }, empty, T0), plain),
    ).toContain(
      "No changes to apply, but a file does not load (see the errors above): no cell it declares is created, changed or closed; fix it and plan again.",
    );
    expect(renderPlanMarkdown(p, [])).toContain(
      "- `fresh` — `cells.d/fresh.yaml` (new: not created until the file loads)",
    );
  });

  it("does not count a quarantined file as unnamed when a cell on disk came from it", () => {
    const desired: Desired = { ...none, quarantined: [{ file: "cells.d/test.yaml", names: [] }] };
    const p = plan(desired, observedOf({ record: recordOf(d1) }), T0);
    expect(p.held).toEqual([{ cell: "c1", file: "cells.d/test.yaml" }]);
    expect(p.unnamedFiles).toEqual([]);
  });

  it("refuses to change the project of a live cell, with the file and line", () => {
    const moved = desiredOf({ name: "c1", members: [AGENT, HUMAN] });
    const observed = observedOf({ record: recordOf(d1, T0, { project: "Other/repo#2" }) });
    const p = plan(moved, observed, T0);
    expect(p.actions).toEqual([]);
    expect(p.diagnostics[0]).toMatchObject({
      severity: "error",
      file: "cells.d/test.yaml",
      line: 4,
      field: "spec.project",
    });
  });

  it("leaves a cell directory without a readable record alone", () => {
    const observed: Observed = {
      cells: new Map([
        [
          "c1",
          {
            archives: [],
            live: {
              name: "c1",
              place: "cells",
              dir: "/s/cells/c1",
              unreadable: "missing .lazarus/cell.json",
              members: [],
              checkpoints: [],
            },
          },
        ],
      ]),
    };
    const p = plan(base, observed, T0);
    expect(p.actions).toEqual([]);
    expect(p.diagnostics[0]!.message).toContain("leaves this cell alone");
  });

  it("is deterministic and ordered by cell name", () => {
    const d = desiredOf({ name: "b" }, { name: "a" }, { name: "c" });
    expect(plan(d, empty, T0).actions.map((a) => a.cell)).toEqual(["a", "b", "c"]);
    expect(plan(d, empty, T0)).toEqual(plan(d, empty, T0));
  });

  it("takes a member's exit time no later than now: a future exit-file mtime does not postpone its restart or reset its failures", () => {
    const rec = recordOf(d1, T0, { members: recordOf(d1).members.map((m) => (m.command ? { ...m, failures: 3 } : m)) });
    const now = T0 + 2 * MIN;
    const p = plan(
      base,
      observedOf({ record: rec, alive: false, exits: { "agent:allegro": { code: 1, at: T0 + 365 * 24 * HOUR } } }),
      now,
    );
    expect(p.actions[0]).toMatchObject({ kind: "member-down", downAt: iso(now), failures: 4 });
    const later = plan(
      base,
      observedOf({
        record: {
          ...rec,
          members: rec.members.map((m) => (m.command ? { ...m, status: "down", downAt: iso(now), failures: 4 } : m)),
        },
      }),
      now + 80_000,
    );
    expect(later.actions.map((a) => a.kind)).toEqual(["restart"]);
  });

  it("plans a killed scrub's leftovers last for their name, after the cell's create", () => {
    const o: Observed = { cells: new Map([["c1", { archives: [], scrubbing: [".scrubbing-c1~1"] }]]) };
    expect(
      plan(base, o, T0).actions.map((a) => `${a.kind}${a.kind === "scrub" && a.interrupted ? " (interrupted)" : ""}`),
    ).toEqual(["create", "scrub (interrupted)"]);
  });
});
