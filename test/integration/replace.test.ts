// A change of backend is a replacement (terraform's -/+), never an in-place edit: plan says so,
// and apply checkpoints, stops the members on the old backend, gives back what it held, lays the
// cell out for the new one, restores, and starts the members there. Real processes, real
// bubblewrap and cgroups (sandbox), uids from this file's own range; a kill -9 at each step of
// the replacement converges on the next run.
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { cellYaml, isAlive, lazarus, readRecord, waitFor } from "../helpers.js";
import { cgroupPids, procState, sandboxSuite, skipReason, uidPids } from "../sandbox/helpers.js";

// Writes its uid into its home (the member's cwd on every backend), then waits to be stopped.
const member = { identity: "agent:w", command: ["/bin/sh", "-c", "id -u > uid.txt; exec sleep 100000"] };
const yaml = (name: string, backend: "process" | "sandbox") => cellYaml({ name, extra: backend === "sandbox" ? "  backend: sandbox" : undefined, members: [member] });

interface LedgerEntry {
  cell: string;
  action: string;
  reason: string;
  details?: Record<string, unknown>;
}
const ledger = (state: string): LedgerEntry[] =>
  readFileSync(path.join(state, "ledger.jsonl"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LedgerEntry);

const gone = (pid: number | undefined, startTime?: number): boolean => pid === undefined || !isAlive(pid, startTime) || procState(pid) === "Z";

describe.skipIf(skipReason)("a backend change replaces the cell", () => {
  const { env, state, cfg, run } = sandboxSuite(239400);
  const cellDir = (name: string) => path.join(state, "cells", name);
  const uidFile = (name: string) => path.join(cellDir(name), "home", "w", "uid.txt");
  const readUid = (name: string): string | undefined => (existsSync(uidFile(name)) ? readFileSync(uidFile(name), "utf8").trim() : undefined);
  const declare = (name: string, backend: "process" | "sandbox") => writeFileSync(path.join(cfg, "cells.d", `${name}.yaml`), yaml(name, backend));

  // A running process cell with work in project/ and in its member's home.
  async function processCell(name: string): Promise<{ pid: number; startTime?: number }> {
    declare(name, "process");
    const r = await run("apply", "--yes");
    expect(r.exitCode, r.stderr).toBe(0);
    await waitFor(() => readUid(name) === "0", 30_000);
    writeFileSync(path.join(cellDir(name), "project", "keep.txt"), "the work\n");
    writeFileSync(path.join(cellDir(name), "home", "w", "notes.txt"), "notes\n");
    const m = readRecord(cellDir(name)).members[0];
    return { pid: m?.pid as number, ...(m?.startTime ? { startTime: m.startTime } : {}) };
  }

  // The cell runs on the sandbox: its member as the cell's uid, its files the checkpoint's and that uid's.
  async function expectSandboxed(name: string, old: { pid: number; startTime?: number }): Promise<number> {
    const rec = readRecord(cellDir(name));
    expect(rec.backend).toBe("sandbox");
    expect(rec.replacing).toBeUndefined();
    const uid = rec.sandbox?.uid as number;
    expect(uid).toBeGreaterThanOrEqual(239400);
    expect(uid).toBeLessThanOrEqual(239499);
    expect(gone(old.pid, old.startTime)).toBe(true);
    await waitFor(() => readUid(name) === String(uid), 60_000);
    expect(uidPids(uid).length).toBeGreaterThan(0);
    expect(cgroupPids(rec.sandbox?.cgroup as string).length).toBeGreaterThan(0);
    const keep = path.join(cellDir(name), "project", "keep.txt");
    expect(readFileSync(keep, "utf8")).toBe("the work\n");
    expect(statSync(keep).uid).toBe(uid);
    expect(readFileSync(path.join(cellDir(name), "home", "w", "notes.txt"), "utf8")).toBe("notes\n");
    expect(existsSync(path.join(state, "uids", String(uid)))).toBe(true);
    expect(readFileSync(path.join(cellDir(name), ".lazarus", "cell.json"), "utf8")).not.toContain('"replacing"');
    return uid;
  }

  it("plans process → sandbox as -/+ replace and applies it: files survive, the member runs as the cell's uid, the old process is gone", async () => {
    const old = await processCell("mover");
    const oldUid = readRecord(cellDir("mover")).uid;
    declare("mover", "sandbox");

    const plan = await run("plan");
    expect(plan.stdout).toMatch(/^-\/\+ replace\s+mover\s+spec\.backend process → sandbox forces replacement: checkpoint, stop and release on process, lay out and restore on sandbox/m);
    expect(plan.stdout).toContain("Plan: 1 replace.");
    expect(plan.stdout).not.toMatch(/~ update/);
    const json = JSON.parse((await run("plan", "--json")).stdout) as { actions: { action: string; replace?: unknown }[] };
    expect(json.actions).toEqual([expect.objectContaining({ action: "replace", replace: { from: "process", to: "sandbox", forces: ["spec.backend"] } })]);

    const applied = await run("apply", "--yes");
    expect(applied.exitCode, applied.stdout + applied.stderr).toBe(0);
    await expectSandboxed("mover", old);
    const rec = readRecord(cellDir("mover"));
    expect(rec.uid).not.toBe(oldUid); // a new incarnation
    const entry = ledger(state).filter((e) => e.cell === "mover" && e.action === "replace");
    expect(entry).toHaveLength(1);
    expect(entry[0]?.details).toMatchObject({ from: "process", to: "sandbox", forces: ["spec.backend"], incarnation: { from: oldUid, to: rec.uid }, uid: rec.sandbox?.uid });
    expect(existsSync(path.join(cellDir("mover"), ".lazarus", "checkpoints", entry[0]?.details?.checkpoint as string))).toBe(true);
    expect((await run("plan", "--detailed-exitcode")).exitCode).toBe(0);
  }, 300_000);

  it("applies sandbox → process: the cell's uid, cgroup and processes are given back, the files survive, the member runs as Lazarus's user", async () => {
    const before = readRecord(cellDir("mover"));
    const uid = before.sandbox?.uid as number;
    const cgroup = before.sandbox?.cgroup as string;
    const m = before.members[0];
    writeFileSync(path.join(cellDir("mover"), "home", "w", "notes.txt"), "notes, sandboxed\n"); // root writes; the checkpoint keeps it
    declare("mover", "process");
    expect((await run("plan")).stdout).toMatch(/^-\/\+ replace\s+mover\s+spec\.backend sandbox → process forces replacement/m);
    const applied = await run("apply", "--yes");
    expect(applied.exitCode, applied.stdout + applied.stderr).toBe(0);
    const rec = readRecord(cellDir("mover"));
    expect(rec.backend).toBe("process");
    expect(rec.sandbox).toBeUndefined();
    expect(gone(m?.pid, m?.startTime)).toBe(true);
    expect(uidPids(uid)).toEqual([]);
    expect(cgroupPids(cgroup)).toEqual([]);
    expect(existsSync(path.join(state, "uids", String(uid)))).toBe(false); // released
    await waitFor(() => readUid("mover") === "0", 30_000);
    expect(isAlive(rec.members[0]?.pid, rec.members[0]?.startTime)).toBe(true);
    expect(readFileSync(path.join(cellDir("mover"), "project", "keep.txt"), "utf8")).toBe("the work\n");
    expect(readFileSync(path.join(cellDir("mover"), "home", "w", "notes.txt"), "utf8")).toBe("notes, sandboxed\n");
    expect(ledger(state).filter((e) => e.cell === "mover" && e.action === "replace").map((e) => `${String(e.details?.from)} → ${String(e.details?.to)}`)).toEqual(["process → sandbox", "sandbox → process"]);
    expect((await run("plan", "--detailed-exitcode")).exitCode).toBe(0);
  }, 300_000);

  // Killed at each step; the next run says what it resumes and finishes the job.
  it.each([["replace:stopped"], ["replace:checkpointed"], ["replace:switched"], ["replace:moved-aside"], ["restore:swapped-one"], ["replace:restored"], ["replace:released"], ["member:after-spawn"]])(
    "converges after a kill -9 at %s",
    async (point) => {
      const name = `k-${point.replace(/[^a-z]+/g, "-")}`.replace(/-+$/, "");
      const old = await processCell(name);
      declare(name, "sandbox");
      const killed = await lazarus(["apply", "--yes", "-c", cfg, "-s", state], { env: { ...env, LAZARUS_FAILPOINT: point } });
      expect(killed.signal, killed.stdout + killed.stderr).toBe("SIGKILL");
      const plan = await run("plan");
      expect(plan.stdout).toMatch(new RegExp(`^-/\\+ replace\\s+${name}\\s+resume interrupted replacement process → sandbox`, "m"));
      const again = await run("apply", "--yes");
      expect(again.exitCode, again.stdout + again.stderr).toBe(0);
      await expectSandboxed(name, old);
      expect(readdirSync(path.join(cellDir(name), ".lazarus")).filter((e) => e.startsWith("replaced-") || e.startsWith(".lazarus-restore-"))).toEqual([]);
      expect(readdirSync(cellDir(name)).filter((e) => e.startsWith(".lazarus-restore-"))).toEqual([]);
      const mine = ledger(state).filter((e) => e.cell === name).map((e) => e.action);
      expect(mine.filter((a) => a === "replace")).toHaveLength(1);
      expect(mine).toContain("recover");
      // Only the new incarnation's uid is claimed under this name.
      const rec = readRecord(cellDir(name));
      const claims = readdirSync(path.join(state, "uids")).filter((u) => readFileSync(path.join(state, "uids", u), "utf8").startsWith(`${name} `));
      expect(claims).toEqual([String(rec.sandbox?.uid)]);
      expect((await run("plan", "--detailed-exitcode")).exitCode).toBe(0);
    },
    300_000,
  );
});
