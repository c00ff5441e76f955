// The core property: after apply, plan is empty, and a second apply changes nothing, for any
// sequence of desired states and clock jumps. Runs the real apply (real files, real processes).
import { rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { computePlan, runApply } from "../../src/engine.js";
import {
  cellProcesses,
  cellYaml,
  cleanup,
  configDir,
  isAlive,
  killAll,
  recordedPids,
  tempDir,
  waitFor,
  type CellOpts,
} from "../helpers.js";

const SLEEP = ["sleep", "600"];
const memberPool = [
  { identity: "agent:allegro", role: "executor", command: SLEEP },
  { identity: "agent:ezra", role: "executor", command: SLEEP },
  { identity: "human:alexander", role: "director" },
  { identity: "bot:kimi", role: "observer" },
];

const cellArb = (name: string): fc.Arbitrary<CellOpts | null> =>
  fc.option(
    fc
      .record({
        name: fc.constant(name),
        state: fc.constantFrom<"active" | "closed">("active", "active", "closed"),
        ttl: fc.constantFrom("30m", "4h", "24h"),
        grace: fc.constantFrom("10m", "30m"),
        retention: fc.constantFrom("1d", "30d"),
        schedule: fc.constantFrom(undefined, "*/20 * * * *"),
        substitute: fc.boolean(),
        members: fc.subarray(memberPool).chain((ms) =>
          fc
            .tuple(
              ...ms.map((m) =>
                fc.record({
                  role: fc.constantFrom(m.role, "observer"),
                  env: fc.constantFrom(undefined, { A: "1" }),
                  restart: fc.constantFrom(undefined, "always", "never"),
                }),
              ),
            )
            .map((vs) =>
              ms.map((m, i) => ({
                ...m,
                role: vs[i]!.role,
                ...(vs[i]!.env ? { env: vs[i]!.env } : {}),
                ...(m.command && vs[i]!.restart ? { restart: vs[i]!.restart } : {}),
              })),
            ),
        ),
      })
      .map(({ schedule, substitute, ...c }) => {
        const allegro = c.members.find((m) => m.identity === "agent:allegro" && m.role === "executor");
        const members =
          substitute && allegro
            ? [...c.members, { identity: "agent:sub", role: "substitute", command: SLEEP, replaces: "agent:allegro" }]
            : c.members;
        const extra = [
          schedule ? `  checkpoint: {schedule: "${schedule}", keep: 2}` : "",
          substitute && allegro ? "  policy: {allowSubstitutes: true}" : "",
        ]
          .filter(Boolean)
          .join("\n");
        return { ...c, members, ...(extra ? { extra } : {}) };
      }),
    { nil: null },
  );

const stepArb = fc.record({
  cells: fc.tuple(cellArb("a"), cellArb("b"), cellArb("c")),
  advanceMin: fc.constantFrom(0, 1, 10, 60, 5 * 60, 2 * 24 * 60, 40 * 24 * 60),
  kill: fc.boolean(), // kill every member process before this step
});

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));

describe("apply then plan", () => {
  it("is empty, and apply is idempotent, over generated desired states", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 4 }), async (steps) => {
        const state = tempDir("lazarus-prop-");
        const config = configDir({});
        dirs.push(state, config);
        let now = Date.parse("2030-01-01T00:00:00Z");
        try {
          for (const step of steps) {
            now += step.advanceMin * 60_000;
            if (step.kill) {
              killAll(state);
              await waitFor(() => cellProcesses(state).length === 0, 10_000);
            }
            for (const name of ["a", "b", "c"]) rmSync(path.join(config, "cells.d", `${name}.yaml`), { force: true });
            for (const c of step.cells)
              if (c) writeFileSync(path.join(config, "cells.d", `${c.name}.yaml`), cellYaml(c));
            const opts = { configDir: config, stateDir: state, now: new Date(now).toISOString(), stopTimeoutMs: 2000 };
            const first = await runApply(opts);
            expect(first?.results.filter((r) => r.status !== "applied")).toEqual([]);
            const after = await computePlan(opts);
            expect(after.plan.actions.map((a) => `${a.kind} ${a.cell}: ${a.reason}`)).toEqual([]);
            const second = await runApply(opts);
            expect(second?.results).toEqual([]);
            // Every member process that runs is one a live record tracks: none left behind by a
            // close, a restart or a substitute.
            const tracked = recordedPids(state)
              .filter((m) => isAlive(m.pid, m.startTime))
              .map((m) => m.pid);
            expect(cellProcesses(state).sort((x, y) => x - y)).toEqual(tracked.sort((x, y) => x - y));
          }
        } finally {
          cleanup(state, config);
        }
        // SIGKILLed by cleanup: gone once the kernel has finished them (slow on a loaded machine).
        await waitFor(() => cellProcesses(state).length === 0, 10_000);
      }),
      { numRuns: Number(process.env.LAZARUS_PROPERTY_RUNS ?? 25) },
    );
  }, 180_000); // 25 runs of real applies: 15–45 s here, once over the default 60 s on a loaded machine
});
