// A member forges its cell's record with another cell's member pid, start time and spawn id, so
// that closing its own cell would stop the victim. Each test fails if the victim is touched.
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { CellRecord } from "../../src/cells/record.js";
import { cellYaml, cleanup, configDir, isAlive, lazarus, readRecord, tempDir, waitFor } from "../helpers.js";

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));
const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();

async function twoCells() {
  const state = tempDir("lazarus-state-");
  const config = configDir({
    "cells.d/victim.yaml": cellYaml({ name: "victim", ttl: "4h" }),
    "cells.d/attacker.yaml": cellYaml({ name: "attacker", ttl: "1h" }),
  });
  dirs.push(state, config);
  const run = (...args: string[]) =>
    lazarus([...args, "--config", config, "--state-dir", state], { timeoutMs: 30_000 });
  expect((await run("apply", "--now", T(0))).exitCode).toBe(0);
  const victimDir = path.join(state, "cells", "victim");
  const attackerDir = path.join(state, "cells", "attacker");
  const victim = readRecord(victimDir).members[0]!;
  await waitFor(() => isAlive(victim.pid, victim.startTime));
  // What the attacker's member writes into its own, member-writable record.
  const forge = (edit: (m: CellRecord["members"][number]) => void) => {
    const file = path.join(attackerDir, ".lazarus", "cell.json");
    const rec = JSON.parse(readFileSync(file, "utf8")) as CellRecord;
    edit(rec.members[0]!);
    writeFileSync(file, JSON.stringify(rec));
  };
  return { run, state, victim, forge };
}

describe("a forged member record", () => {
  it("with the victim's pid, start time and spawn id: closing the attacker's cell leaves the victim running", async () => {
    const { run, state, victim, forge } = await twoCells();
    forge((m) =>
      Object.assign(m, { pid: victim.pid, startTime: victim.startTime, spawnId: victim.spawnId, status: "running" }),
    );
    const plan = await run("plan", "--json", "--now", T(90));
    expect(
      JSON.parse(plan.stdout).actions.map((a: { cell: string; action: string }) => `${a.cell} ${a.action}`),
    ).toEqual(["attacker checkpoint", "attacker close"]);
    const r = await run("apply", "--now", T(90));
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(readRecord(path.join(state, "graveyard", "attacker")).state).toBe("closed");
    await new Promise((res) => setTimeout(res, 200));
    expect(isAlive(victim.pid, victim.startTime)).toBe(true);
    expect(readFileSync(`/proc/${victim.pid}/stat`, "utf8")).not.toMatch(/\) T /); // not left frozen either
  });

  it("with the victim's spawn id on a member that is still starting: the victim is neither stopped nor adopted", async () => {
    const { run, state, victim, forge } = await twoCells();
    forge((m) => {
      Object.assign(m, { spawnId: victim.spawnId, status: "starting" });
      delete m.pid;
      delete m.startTime;
    });
    const r = await run("apply", "--now", T(90));
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    await new Promise((res) => setTimeout(res, 200));
    expect(isAlive(victim.pid, victim.startTime)).toBe(true);
    expect(readRecord(path.join(state, "graveyard", "attacker")).members[0]!.pid).not.toBe(victim.pid);
  });
});
