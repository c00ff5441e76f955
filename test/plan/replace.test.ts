// A change of where a cell runs is planned as a replacement (-/+), never as an in-place update.
import pc from "picocolors";
import { describe, expect, it } from "vitest";
import { plan } from "../../src/plan/plan.js";
import { renderPlanText } from "../../src/plan/render/text.js";
import { planToJson } from "../../src/plan/render/json.js";
import { desiredOf, HOUR, iso, observedOf, recordOf, T0 } from "./builders.js";

const AGENT = { identity: "agent:allegro", role: "executor", command: ["node", "a.js"] };
const plain = pc.createColors(false);
const d1 = desiredOf({ name: "c1", members: [AGENT] }).cells.get("c1")!;

describe("replacement", () => {
  it("plans a backend change as one -/+ replace and nothing else of the cell", () => {
    const p = plan(
      desiredOf({ name: "c1", members: [AGENT] }),
      observedOf({ record: recordOf(d1, T0, { backend: "sandbox", labels: { old: "x" } }), alive: false }),
      T0 + HOUR,
    );
    expect(p.actions.map((a) => a.kind)).toEqual(["replace"]);
    const a = p.actions[0]!;
    expect(a).toMatchObject({
      kind: "replace",
      from: "sandbox",
      to: "process",
      forces: ["spec.backend"],
      resume: false,
    });
    expect(p.diagnostics).toEqual([]);
    expect(renderPlanText(p, plain)).toMatch(
      /^-\/\+ replace\s+c1\s+spec\.backend sandbox → process forces replacement: checkpoint, stop and release on sandbox, lay out and restore on process, start 1 member there$/m,
    );
    expect(renderPlanText(p, plain)).toContain("Plan: 1 replace.");
    expect((planToJson(p, []) as { actions: unknown[] }).actions).toEqual([
      expect.objectContaining({
        action: "replace",
        replace: { from: "sandbox", to: "process", forces: ["spec.backend"] },
      }),
    ]);
  });

  it("keeps other symbols where they were (right-aligned in three columns, as terraform)", () => {
    const p = plan(desiredOf({ name: "c1", members: [AGENT] }), observedOf(), T0);
    expect(renderPlanText(p, plain)).toMatch(/^ {2}\+ create\s+c1/m);
  });

  it("renews with the replacement when the ttl changed too", () => {
    const d = desiredOf({ name: "c1", ttl: "8h", members: [AGENT] });
    const p = plan(d, observedOf({ record: recordOf(d1, T0, { backend: "sandbox" }) }), T0 + HOUR);
    expect(p.actions.map((a) => a.kind)).toEqual(["renew", "replace"]);
  });

  it("closes rather than replaces a cell past its ttl or declared closed", () => {
    const expired = plan(
      desiredOf({ name: "c1", members: [AGENT] }),
      observedOf({ record: recordOf(d1, T0, { backend: "sandbox" }) }),
      T0 + 5 * HOUR,
    );
    expect(expired.actions.map((a) => a.kind)).toEqual(["checkpoint", "close"]);
  });

  it("replaces nothing when the project changed too: that is an error, the cell is left as it runs", () => {
    const p = plan(
      desiredOf({ name: "c1", members: [AGENT] }),
      observedOf({ record: recordOf(d1, T0, { backend: "sandbox", project: "Other/repo#2" }) }),
      T0 + HOUR,
    );
    expect(p.actions.map((a) => a.kind)).not.toContain("replace");
    expect(p.diagnostics[0]).toMatchObject({ severity: "error", field: "spec.project" });
  });

  it("resumes a replacement a killed run left, even once the record names the new backend", () => {
    const replacing = {
      from: { backend: "sandbox" as const, uid: "old" },
      to: { backend: "process" as const },
      uid: "new",
      startedAt: iso(T0),
      checkpoint: "20261125T130000Z.tar.gz",
      switched: true,
    };
    const p = plan(
      desiredOf({ name: "c1", members: [AGENT] }),
      observedOf({ record: recordOf(d1, T0, { replacing }), alive: false }),
      T0 + HOUR,
    );
    expect(p.actions.map((a) => a.kind)).toEqual(["replace"]);
    expect(p.actions[0]).toMatchObject({ resume: true, from: "sandbox", to: "process" });
    expect(p.actions[0]!.reason).toMatch(
      /^resume interrupted replacement sandbox → process \(checkpoint 20261125T130000Z\.tar\.gz taken\)/,
    );
  });
});
