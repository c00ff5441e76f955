// Time and saved plans through the real CLI: a future --now cannot poison the state dir's clock,
// saved plans apply for every action kind and stamp effects with the apply's time, a TTL-closed
// cell stays closed past the purge of its archive, a substitute's restore loses nothing.
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  AGENT,
  cellYaml,
  cleanup,
  configDir,
  isAlive,
  lazarus,
  readRecord,
  tempDir,
  waitFor,
  type CellOpts,
} from "../helpers.js";

const made: string[] = [];
afterEach(() => cleanup(...made.splice(0)));

function setup(files: Record<string, string>) {
  const config = configDir(files);
  const state = tempDir("lazarus-state-");
  made.push(state, config);
  const run = (...args: string[]) => lazarus([...args, "--config", config, "--state-dir", state]);
  const write = (name: string, yaml: string) => writeFileSync(path.join(config, "cells.d", name), yaml);
  return { config, state, run, write };
}

const iso = (ms: number) => new Date(ms).toISOString();
const MIN = 60_000;
const HOUR = 60 * MIN;

// Stop a member this test started (its whole process group) and wait until it is gone.
async function killMember(dir: string, identity: string) {
  const m = readRecord(dir).members.find((x) => x.identity === identity)!;
  process.kill(-m.pid!, "SIGKILL");
  await waitFor(() => !isAlive(m.pid, m.startTime));
}

describe("a future --now", () => {
  it("does not move the clock forward for later plain commands: they refuse to mutate and say how to recover", async () => {
    const { state, run } = setup({ "cells.d/a.yaml": cellYaml({ name: "now1" }) });
    expect((await run("apply", "--yes")).exitCode).toBe(0);
    const future = "2099-01-01T00:00:00.000Z";
    expect((await run("checkpoint", "now1", "--now", future)).exitCode).toBe(0);

    const applied = await run("apply", "--yes");
    expect(applied.exitCode).not.toBe(0);
    expect(applied.stderr).toContain("in the future");
    expect(applied.stderr).toContain(`--now ${future}`);
    expect(readRecord(path.join(state, "cells", "now1")).state).toBe("active"); // not closed on a TTL of 2099

    const checkpoint = await run("checkpoint", "now1");
    expect(checkpoint.exitCode).not.toBe(0);
    expect(checkpoint.stderr).toContain("in the future");

    // showing is allowed, at the clock, with a warning
    const planned = await run("plan", "--detailed-exitcode");
    expect(planned.exitCode).toBe(0);
    expect(planned.stderr).toContain("in the future");
    expect(planned.stdout).not.toContain("close");
    const status = await run("status");
    expect(status.exitCode).toBe(0);
    expect(status.stderr).toContain("in the future");

    // the way out: act at that time explicitly
    const explicit = await run("apply", "--yes", "--now", "2099-01-01T00:01:00Z");
    expect(explicit.exitCode).toBe(0);
    expect(explicit.stdout).toContain("close");
  });

  it("a new cell's activation is the real clock, not a future ledger time", async () => {
    const { state, run, write } = setup({ "cells.d/a.yaml": cellYaml({ name: "now2" }) });
    expect((await run("apply", "--yes", "--now", "2099-01-01T00:00:00Z")).exitCode).toBe(0);
    write("b.yaml", cellYaml({ name: "now3" }));
    expect((await run("apply", "--yes")).exitCode).not.toBe(0);
    expect(existsSync(path.join(state, "cells", "now3"))).toBe(false);
  });
});

describe("saved plans", () => {
  it("stamp their effects with the apply's time: a close applied 5 h later still gets its grace", async () => {
    const t0 = Date.now() - 5 * HOUR;
    const { state, run, write } = setup({ "cells.d/a.yaml": cellYaml({ name: "late" }) });
    expect((await run("apply", "--yes", "--now", iso(t0))).exitCode).toBe(0);
    write("a.yaml", cellYaml({ name: "late", state: "closed" }));
    const planFile = `${state}-plan.json`;
    made.push(planFile);
    expect((await run("plan", "--now", iso(t0 + MIN), "--out", planFile)).exitCode).toBe(0);
    const before = Date.now();
    const r = await run("apply", planFile);
    expect(r.exitCode, r.stderr).toBe(0);
    const closedAt = Date.parse(readRecord(path.join(state, "graveyard", "late")).closedAt!);
    expect(closedAt).toBeGreaterThanOrEqual(before - 1000);
    const next = await run("plan");
    expect(next.stdout).not.toContain("scrub");
  });

  it("apply for every action kind the CLI can reach (plan --out, then apply FILE)", async () => {
    const base = Date.parse("2031-03-01T00:00:00Z");
    const at = (m: number) => iso(base + m * MIN);
    const agent = { identity: "agent:allegro", role: "executor", command: ["node", AGENT] };
    const human = { identity: "human:alexander", role: "director" };
    const cell = (o: Partial<CellOpts> = {}) =>
      cellYaml({ name: "kinds", retention: "1h", members: [agent, human], ...o });
    const { config, state, run, write } = setup({ "cells.d/k.yaml": cell() });
    const planFile = `${state}-plan.json`;
    made.push(planFile);
    const dir = path.join(state, "cells", "kinds");
    const seen = new Set<string>();

    // Save the plan at minute m, check it holds the kinds expected, apply the file at the same time.
    async function step(m: number, kinds: string[]) {
      const p = await run("plan", "--now", at(m), "--out", planFile);
      expect(p.exitCode, p.stderr).toBe(0);
      const saved = JSON.parse(readFileSync(planFile, "utf8")) as { actions: { kind: string }[] };
      const got = saved.actions.map((a) => a.kind);
      expect(got, p.stdout).toEqual(expect.arrayContaining(kinds));
      const r = await run("apply", planFile, "--now", at(m));
      expect(r.stderr).not.toContain("stale");
      expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
      for (const k of got) seen.add(k);
    }

    await step(0, ["create"]);
    write("k.yaml", cell({ ttl: "6h", grace: "45m" }));
    await step(1, ["renew", "update"]);
    write("k.yaml", cell({ ttl: "6h", grace: "45m", members: [{ ...agent, env: { A: "1" } }, human] }));
    await step(2, ["restart"]);
    const invitee = { identity: "human:guest", role: "observer" };
    write("k.yaml", cell({ ttl: "6h", grace: "45m", members: [{ ...agent, env: { A: "1" } }, human, invitee] }));
    await step(3, ["invite"]);
    await step(20, ["revoke"]);
    write("k.yaml", cell({ ttl: "6h", grace: "45m", members: [{ ...agent, env: { A: "1" } }, human] }));
    await step(21, ["remove-member"]);
    await killMember(dir, "agent:allegro");
    await step(22, ["member-down", "cell-down"]);
    await step(23, ["restart", "revive"]);
    write(
      "k.yaml",
      cell({ ttl: "6h", state: "closed", grace: "45m", members: [{ ...agent, env: { A: "1" } }, human] }),
    );
    await step(24, ["checkpoint", "close"]);
    write("k.yaml", cell({ ttl: "7h", grace: "45m", members: [{ ...agent, env: { A: "1" } }, human] }));
    await step(25, ["resurrect"]);
    rmSync(path.join(config, "cells.d", "k.yaml")); // removed from cells.d
    await step(26, ["close"]);
    await step(80, ["scrub"]);
    await step(200, ["purge"]);
    expect([...seen].sort()).toEqual(
      [
        "cell-down",
        "checkpoint",
        "close",
        "create",
        "invite",
        "member-down",
        "purge",
        "remove-member",
        "restart",
        "resurrect",
        "revive",
        "revoke",
        "renew",
        "scrub",
        "update",
      ].sort(),
    );
  }, 180_000); // 32 CLI runs: ~20 s on a quiet machine, over 60 s on a loaded one
});

describe("a cell closed on its TTL", () => {
  it("is not reopened as a fresh cell once its archive is purged", async () => {
    const base = Date.parse("2032-05-01T00:00:00Z");
    const at = (m: number) => iso(base + m * MIN);
    const { state, run } = setup({
      "cells.d/t.yaml": cellYaml({ name: "ttl1", ttl: "1h", grace: "10m", retention: "1h" }),
    });
    for (const m of [0, 70, 90, 200]) {
      const r = await run("apply", "--yes", "--now", at(m));
      expect(r.exitCode, r.stderr).toBe(0);
    }
    expect(existsSync(path.join(state, "archive")) ? readdirSync(path.join(state, "archive")) : []).toEqual([]); // purged
    const p = await run("plan", "--detailed-exitcode", "--now", at(210));
    expect(p.stdout).not.toContain("create");
    expect(p.stderr).toContain("not reopened");
    expect(p.exitCode).toBe(0);
  });
});

describe("a substitute that restores a checkpoint with keep: 1", () => {
  it("restores the planned checkpoint instead of rotating it away and deleting the work", async () => {
    const base = Date.parse("2033-01-01T00:00:00Z");
    const at = (m: number) => iso(base + m * MIN);
    const yaml = cellYaml({
      name: "subs",
      extra: "  policy: {allowSubstitutes: true}\n  checkpoint: {keep: 1}",
      members: [
        { identity: "agent:allegro", role: "executor", command: ["node", AGENT], restart: "never" },
        { identity: "agent:ezra", role: "substitute", command: ["node", AGENT], replaces: "agent:allegro" },
      ],
    });
    const { state, run } = setup({ "cells.d/s.yaml": yaml });
    const dir = path.join(state, "cells", "subs");
    expect((await run("apply", "--yes", "--now", at(0))).exitCode).toBe(0);
    writeFileSync(path.join(dir, "project", "work.txt"), "checkpointed\n");
    expect((await run("checkpoint", "subs", "--now", at(1))).exitCode).toBe(0);
    writeFileSync(path.join(dir, "project", "work.txt"), "after the checkpoint\n");
    await killMember(dir, "agent:allegro");

    const r = await run("apply", "--yes", "--now", at(2));
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(readFileSync(path.join(dir, "project", "work.txt"), "utf8")).toBe("checkpointed\n");
    expect(readRecord(dir).members.find((m) => m.identity === "agent:ezra")?.status).toBe("running");
    // the safety checkpoint (with the later work) is what keep: 1 leaves
    const left = readdirSync(path.join(dir, ".lazarus", "checkpoints")).filter((f) => /\.tar\.(gz|zst)$/.test(f));
    expect(left).toHaveLength(1);
    expect(readdirSync(dir).filter((f) => f.startsWith(".lazarus-restore-"))).toEqual([]);
    const again = await run("plan", "--detailed-exitcode", "--now", at(3));
    expect(again.exitCode, again.stdout).toBe(0);
  });
});

describe("a substitute's restore killed halfway through its swap", () => {
  it.each(["restore:swapped-one", "applied:invite"])(
    "converges on the next apply (killed at %s): the checkpoint's project/ and shared/, nothing left staged",
    async (point) => {
      const base = Date.parse("2033-06-01T00:00:00Z");
      const at = (m: number) => iso(base + m * MIN);
      const yaml = cellYaml({
        name: "half",
        extra: "  policy: {allowSubstitutes: true}",
        members: [
          { identity: "agent:allegro", role: "executor", command: ["node", AGENT], restart: "never" },
          { identity: "agent:ezra", role: "substitute", command: ["node", AGENT], replaces: "agent:allegro" },
        ],
      });
      const { state, config, run } = setup({ "cells.d/h.yaml": yaml });
      const dir = path.join(state, "cells", "half");
      expect((await run("apply", "--yes", "--now", at(0))).exitCode).toBe(0);
      writeFileSync(path.join(dir, "project", "work.txt"), "checkpointed\n");
      writeFileSync(path.join(dir, "shared", "notes.md"), "checkpointed notes\n");
      expect((await run("checkpoint", "half", "--now", at(1))).exitCode).toBe(0);
      writeFileSync(path.join(dir, "project", "work.txt"), "after the checkpoint\n");
      writeFileSync(path.join(dir, "shared", "notes.md"), "later notes\n");
      await killMember(dir, "agent:allegro");

      const killed = await lazarus(["apply", "--yes", "--now", at(2), "--config", config, "--state-dir", state], {
        env: { LAZARUS_FAILPOINT: point },
      });
      expect(killed.signal).toBe("SIGKILL");
      if (point === "restore:swapped-one")
        expect(readdirSync(dir).filter((f) => f.startsWith(".lazarus-restore-"))).toHaveLength(1);

      const r = await run("apply", "--yes", "--now", at(3));
      expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(readFileSync(path.join(dir, "project", "work.txt"), "utf8")).toBe("checkpointed\n");
      expect(readFileSync(path.join(dir, "shared", "notes.md"), "utf8")).toBe("checkpointed notes\n");
      expect(readdirSync(dir).filter((f) => f.startsWith(".lazarus-restore-"))).toEqual([]);
      await waitFor(() => readRecord(dir).members.find((m) => m.identity === "agent:ezra")?.status === "running");
      const again = await run("plan", "--detailed-exitcode", "--now", at(4));
      expect(again.exitCode, again.stdout).toBe(0);
      for (const m of readRecord(dir).members)
        if (m.pid && isAlive(m.pid, m.startTime)) process.kill(-m.pid, "SIGKILL");
    },
  );
});

describe("a substitute joining while another executor runs", () => {
  it("does not restore project/ from under the running executor", async () => {
    const base = Date.parse("2034-01-01T00:00:00Z");
    const at = (m: number) => iso(base + m * MIN);
    const yaml = cellYaml({
      name: "coex",
      extra: "  policy: {allowSubstitutes: true}",
      members: [
        { identity: "agent:allegro", role: "executor", command: ["node", AGENT], restart: "never" },
        { identity: "agent:bob", role: "executor", command: ["node", AGENT] },
        { identity: "agent:ezra", role: "substitute", command: ["node", AGENT], replaces: "agent:allegro" },
      ],
    });
    const { state, run } = setup({ "cells.d/c.yaml": yaml });
    const dir = path.join(state, "cells", "coex");
    expect((await run("apply", "--yes", "--now", at(0))).exitCode).toBe(0);
    writeFileSync(path.join(dir, "project", "work.txt"), "checkpointed\n");
    expect((await run("checkpoint", "coex", "--now", at(1))).exitCode).toBe(0);
    writeFileSync(path.join(dir, "project", "work.txt"), "bob's later work\n");
    await killMember(dir, "agent:allegro");
    const r = await run("apply", "--yes", "--now", at(2));
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(readFileSync(path.join(dir, "project", "work.txt"), "utf8")).toBe("bob's later work\n");
    expect(readRecord(dir).members.find((m) => m.identity === "agent:ezra")?.status).toBe("running");
  });
});
