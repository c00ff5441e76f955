// kill -9 an apply at every step that matters, then prove the next apply converges with nothing lost:
// the plan is empty, each declared member runs exactly once, the ledger is intact and notes the crash.
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { execa } from "execa";
import {
  AGENT,
  CLI,
  cellProcesses,
  cellYaml,
  cleanup,
  configDir,
  isAlive,
  lazarus,
  readRecord,
  tempDir,
  waitFor,
} from "../helpers.js";

const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();
const cell = (ttl = "4h") =>
  cellYaml({
    name: "c",
    ttl,
    members: [
      { identity: "agent:allegro", command: ["node", AGENT] },
      { identity: "human:alexander", role: "director" },
    ],
  });

let dirs: string[] = [];
afterEach(() => {
  cleanup(...dirs);
  dirs = [];
});

type Phase = "create" | "restart" | "close" | "resurrect" | "scrub";

// Bring the state dir to just before the crashing apply; return the time it runs at.
async function setup(phase: Phase, config: string, state: string): Promise<number> {
  const run = (m: number) => lazarus(["apply", "--config", config, "--state-dir", state, "--now", T(m)]);
  if (phase === "create") return 0;
  expect((await run(0)).exitCode).toBe(0);
  if (phase === "restart") {
    const m = readRecord(path.join(state, "cells", "c")).members[0]!;
    process.kill(-(m.pid as number), "SIGKILL");
    await waitFor(() => !isAlive(m.pid, m.startTime));
    expect((await run(1)).exitCode).toBe(0); // notices it down; the restart waits out the backoff
    return 2;
  }
  if (phase === "close") return 5 * 60;
  expect((await run(5 * 60)).exitCode).toBe(0);
  if (phase === "resurrect") {
    writeFileSync(path.join(config, "cells.d", "c.yaml"), cell("8h"));
    return 5 * 60 + 10;
  }
  return 6 * 60; // scrub
}

const cases: [Phase, string][] = [
  ["create", "create:before-rename"],
  ["create", "create:after-rename"],
  ["create", "create:prepared"],
  ["create", "member:before-spawn"],
  ["create", "member:after-spawn"],
  ["create", "applied:create"],
  ["restart", "member:before-spawn"],
  ["restart", "member:after-spawn"],
  ["restart", "applied:restart"],
  ["close", "close:stopped"],
  ["close", "close:recorded"],
  ["close", "applied:close"],
  ["resurrect", "resurrect:moved"],
  ["resurrect", "member:after-spawn"],
  ["resurrect", "applied:resurrect"],
  ["scrub", "scrub:before-archive-rename"],
  ["scrub", "scrub:archived"],
  ["scrub", "scrub:moved-aside"],
  ["scrub", "scrub:released"],
  ["scrub", "scrub:deleting"],
  ["scrub", "applied:scrub"],
];

describe("a crash during apply", () => {
  it.each(cases)("during %s at %s converges on the next apply", async (phase, point) => {
    const state = tempDir("lazarus-state-");
    const config = configDir({ "cells.d/c.yaml": cell() });
    dirs.push(state, config);
    const at = await setup(phase, config, state);
    const args = ["--config", config, "--state-dir", state, "--now", T(at)];

    const crashed = await lazarus(["apply", ...args], { env: { LAZARUS_FAILPOINT: point } });
    expect(crashed.signal, crashed.stdout + crashed.stderr).toBe("SIGKILL");

    const aside = ["scrub:moved-aside", "scrub:released", "scrub:deleting"].includes(point);
    if (aside) {
      // The entry was moved aside before any deletion: plan says it finishes that scrub.
      expect(readdirSync(path.join(state, "graveyard"))).toEqual([expect.stringMatching(/^\.scrubbing-c~[0-9a-f]+$/)]);
      const shown = await lazarus(["plan", ...args]);
      expect(shown.stdout).toContain("finish interrupted scrub");
    }

    const again = await lazarus(["apply", ...args]);
    expect(again.exitCode, again.stdout + again.stderr).toBe(0);
    const plan = await lazarus(["plan", "--detailed-exitcode", ...args]);
    expect(plan.exitCode, plan.stdout).toBe(0);

    const live = path.join(state, "cells", "c");
    const running = existsSync(live) ? readRecord(live).members.filter((m) => m.command) : [];
    for (const m of running) expect(isAlive(m.pid, m.startTime), `${m.identity} runs`).toBe(true);
    expect(cellProcesses(state).sort()).toEqual(running.map((m) => m.pid).sort());
    if (phase === "close" || phase === "scrub") expect(existsSync(live)).toBe(false);
    if (phase === "scrub") {
      expect(readdirSync(path.join(state, "graveyard")), "nothing left in the graveyard, aside or not").toEqual([]);
      const days = readdirSync(path.join(state, "archive"));
      expect(readdirSync(path.join(state, "archive", days[0]!))).toEqual(["c"]);
    }
    if (phase === "resurrect") expect(readRecord(live).state).toBe("active");
    expect(readdirSync(path.join(state, "cells")).filter((e) => e.startsWith("."))).toEqual([]);

    const verify = await lazarus(["ledger", "verify", "--state-dir", state]);
    expect(verify.exitCode, verify.stderr).toBe(0);
    const ledger = readFileSync(path.join(state, "ledger.jsonl"), "utf8");
    if (!point.startsWith("applied:")) expect(ledger).toContain('"action":"recover"');
    if (aside)
      expect(ledger).toMatch(
        /"action":"scrub","reason":"finish interrupted scrub[^"]*","details":\{"finished":\["\.scrubbing-c~/,
      );
  });

  it("killed at a random moment while creating many cells, converges on the next apply", async () => {
    const state = tempDir("lazarus-state-");
    const files: Record<string, string> = {};
    for (let i = 0; i < 20; i++)
      files[`cells.d/c${i}.yaml`] = cellYaml({
        name: `c${i}`,
        members: [{ identity: "agent:a", command: ["node", AGENT] }],
      });
    const config = configDir(files);
    dirs.push(state, config);
    const args = ["--config", config, "--state-dir", state, "--now", T(0)];
    const child = execa("node", [CLI, "apply", ...args], { reject: false });
    await waitFor(
      () => existsSync(path.join(state, "cells")) && readdirSync(path.join(state, "cells")).length >= 5,
      20_000,
    );
    child.kill("SIGKILL");
    await child;
    expect((await lazarus(["apply", ...args])).exitCode).toBe(0);
    expect((await lazarus(["plan", "--detailed-exitcode", ...args])).exitCode).toBe(0);
    expect(cellProcesses(state).length).toBe(20);
  });
});
