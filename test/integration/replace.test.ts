// A change of backend is a replacement (terraform's -/+), never an in-place edit: plan says so,
// and apply checkpoints, stops the members on the old backend, gives back what it held, lays the
// cell out for the new one, restores, and starts the members there. Real processes, real
// bubblewrap and cgroups (sandbox), uids from this file's own range; a kill -9 at each step of
// the replacement converges on the next run.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cellYaml, configDir, isAlive, killAll, lazarus, readRecord, tempDir, waitFor, uidBand } from "../helpers.js";
import {
  IMAGE,
  cleanupContainers,
  containersOf,
  engine,
  skipReason as containerSkip,
} from "../backends/container-helpers.js";
import { cgroupPids, procState, sandboxSuite, skipReason, uidPids } from "../sandbox/helpers.js";

// Writes its uid into its home (the member's cwd on every backend), then waits to be stopped.
const member = { identity: "agent:w", command: ["/bin/sh", "-c", "id -u > uid.txt; exec sleep 100000"] };
const CREDS = "  credentials:\n    TOKEN: {env: LAZARUS_SECRET_REPLACE_TOKEN}";
const yaml = (name: string, backend: "process" | "sandbox") =>
  cellYaml({ name, extra: backend === "sandbox" ? `  backend: sandbox\n${CREDS}` : CREDS, members: [member] });

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

interface StatusCell {
  backend: string;
  where: Record<string, unknown>;
  replacing?: { from: string; to: string };
  members: { where: Record<string, unknown> | null }[];
}

const gone = (pid: number | undefined, startTime?: number): boolean =>
  pid === undefined || !isAlive(pid, startTime) || procState(pid) === "Z";

describe.skipIf(skipReason)("a backend change replaces the cell", () => {
  const band = uidBand("integration/replace-sandbox");
  const { env, state, cfg, run } = sandboxSuite("integration/replace-sandbox", {
    LAZARUS_SECRET_REPLACE_TOKEN: "t0ken",
  }); // the container suite's: integration/replace-container
  const cellDir = (name: string) => path.join(state, "cells", name);
  const uidFile = (name: string) => path.join(cellDir(name), "home", "w", "uid.txt");
  const readUid = (name: string): string | undefined =>
    existsSync(uidFile(name)) ? readFileSync(uidFile(name), "utf8").trim() : undefined;
  const declare = (name: string, backend: "process" | "sandbox") =>
    writeFileSync(path.join(cfg, "cells.d", `${name}.yaml`), yaml(name, backend));

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
    expect(uid).toBeGreaterThanOrEqual(band.first);
    expect(uid).toBeLessThanOrEqual(band.last);
    expect(gone(old.pid, old.startTime)).toBe(true);
    await waitFor(() => readUid(name) === String(uid), 60_000);
    expect(uidPids(uid).length).toBeGreaterThan(0);
    expect(cgroupPids(rec.sandbox?.cgroup as string).length).toBeGreaterThan(0);
    const keep = path.join(cellDir(name), "project", "keep.txt");
    expect(readFileSync(keep, "utf8")).toBe("the work\n");
    expect(statSync(keep).uid).toBe(uid);
    expect(readFileSync(path.join(cellDir(name), "home", "w", "notes.txt"), "utf8")).toBe("notes\n");
    expect(existsSync(path.join(state, "uids", String(uid)))).toBe(true);
    const creds = statSync(path.join(cellDir(name), ".lazarus", "secrets", "credentials.json"));
    expect([creds.uid, creds.mode & 0o777]).toEqual([uid, 0o400]);
    expect(readFileSync(path.join(cellDir(name), ".lazarus", "cell.json"), "utf8")).not.toContain('"replacing"');
    return uid;
  }

  it("plans process → sandbox as -/+ replace and applies it: files survive, the member runs as the cell's uid, the old process is gone", async () => {
    const old = await processCell("mover");
    const oldUid = readRecord(cellDir("mover")).uid;
    declare("mover", "sandbox");

    const plan = await run("plan");
    expect(plan.stdout).toMatch(
      /^-\/\+ replace\s+mover\s+spec\.backend process → sandbox forces replacement: checkpoint, stop and release on process, lay out and restore on sandbox/m,
    );
    expect(plan.stdout).toContain("Plan: 1 replace.");
    expect(plan.stdout).not.toMatch(/~ update/);
    const json = JSON.parse((await run("plan", "--json")).stdout) as {
      actions: { action: string; replace?: unknown }[];
    };
    expect(json.actions).toEqual([
      expect.objectContaining({
        action: "replace",
        replace: { from: "process", to: "sandbox", forces: ["spec.backend"] },
      }),
    ]);

    const applied = await run("apply", "--yes");
    expect(applied.exitCode, applied.stdout + applied.stderr).toBe(0);
    await expectSandboxed("mover", old);
    const rec = readRecord(cellDir("mover"));
    expect(rec.uid).not.toBe(oldUid); // a new incarnation
    const entry = ledger(state).filter((e) => e.cell === "mover" && e.action === "replace");
    expect(entry).toHaveLength(1);
    expect(entry[0]?.details).toMatchObject({
      from: "process",
      to: "sandbox",
      forces: ["spec.backend"],
      incarnation: { from: oldUid, to: rec.uid },
      uid: rec.sandbox?.uid,
    });
    expect(
      existsSync(path.join(cellDir("mover"), ".lazarus", "checkpoints", entry[0]?.details?.checkpoint as string)),
    ).toBe(true);
    // status says where it runs now
    const st = JSON.parse((await run("status", "mover", "--json")).stdout) as { cells: StatusCell[] };
    expect(st.cells[0]).toMatchObject({
      backend: "sandbox",
      where: { host: hostname(), uid: rec.sandbox?.uid, cgroup: rec.sandbox?.cgroup },
      members: [{ where: { cgroup: `${rec.sandbox?.cgroup}/w` } }],
    });
    expect(st.cells[0]).not.toHaveProperty("replacing");
    expect((await run("status", "mover")).stdout).toContain(
      `  on sandbox at ${hostname()}: uid ${rec.sandbox?.uid}, cgroup ${rec.sandbox?.cgroup}`,
    );
    expect((await run("plan", "--detailed-exitcode")).exitCode).toBe(0);
  }, 300_000);

  it("applies sandbox → process: the cell's uid, cgroup and processes are given back, the files survive, the member runs as Lazarus's user", async () => {
    const before = readRecord(cellDir("mover"));
    const uid = before.sandbox?.uid as number;
    const cgroup = before.sandbox?.cgroup as string;
    const m = before.members[0];
    writeFileSync(path.join(cellDir("mover"), "home", "w", "notes.txt"), "notes, sandboxed\n"); // root writes; the checkpoint keeps it
    declare("mover", "process");
    expect((await run("plan")).stdout).toMatch(
      /^-\/\+ replace\s+mover\s+spec\.backend sandbox → process forces replacement/m,
    );
    const applied = await run("apply", "--yes");
    expect(applied.exitCode, applied.stdout + applied.stderr).toBe(0);
    const rec = readRecord(cellDir("mover"));
    expect(rec.backend).toBe("process");
    expect(rec.sandbox).toBeUndefined();
    expect(gone(m?.pid, m?.startTime)).toBe(true);
    expect(uidPids(uid)).toEqual([]);
    expect(cgroupPids(cgroup)).toEqual([]);
    expect(existsSync(path.join(state, "uids", String(uid)))).toBe(false); // released
    expect(statSync(path.join(cellDir("mover"), ".lazarus", "secrets", "credentials.json")).uid).toBe(0); // no file left to the released uid
    await waitFor(() => readUid("mover") === "0", 30_000);
    expect(isAlive(rec.members[0]?.pid, rec.members[0]?.startTime)).toBe(true);
    expect(readFileSync(path.join(cellDir("mover"), "project", "keep.txt"), "utf8")).toBe("the work\n");
    expect(readFileSync(path.join(cellDir("mover"), "home", "w", "notes.txt"), "utf8")).toBe("notes, sandboxed\n");
    expect(
      ledger(state)
        .filter((e) => e.cell === "mover" && e.action === "replace")
        .map((e) => `${String(e.details?.from)} → ${String(e.details?.to)}`),
    ).toEqual(["process → sandbox", "sandbox → process"]);
    expect((await run("plan", "--detailed-exitcode")).exitCode).toBe(0);
  }, 300_000);

  // Killed at each step; the next run says what it resumes and finishes the job.
  it.each([
    ["replace:stopped"],
    ["replace:checkpointed"],
    ["replace:switched"],
    ["replace:moved-aside"],
    ["restore:swapped-one"],
    ["replace:restored"],
    ["replace:released"],
    ["member:after-spawn"],
  ])(
    "converges after a kill -9 at %s",
    async (point) => {
      const name = `k-${point.replace(/[^a-z]+/g, "-")}`.replace(/-+$/, "");
      const old = await processCell(name);
      declare(name, "sandbox");
      const killed = await lazarus(["apply", "--yes", "-c", cfg, "-s", state], {
        env: { ...env, LAZARUS_FAILPOINT: point },
      });
      expect(killed.signal, killed.stdout + killed.stderr).toBe("SIGKILL");
      const half = JSON.parse((await run("status", name, "--json")).stdout) as { cells: StatusCell[] };
      expect(half.cells[0]?.replacing).toEqual({ from: "process", to: "sandbox" });
      expect((await run("status", name)).stdout).toContain("the next apply finishes it");
      const plan = await run("plan");
      expect(plan.stdout).toMatch(
        new RegExp(`^-/\\+ replace\\s+${name}\\s+resume interrupted replacement process → sandbox`, "m"),
      );
      const again = await run("apply", "--yes");
      expect(again.exitCode, again.stdout + again.stderr).toBe(0);
      await expectSandboxed(name, old);
      expect(
        readdirSync(path.join(cellDir(name), ".lazarus")).filter(
          (e) => e.startsWith("replaced-") || e.startsWith(".lazarus-restore-"),
        ),
      ).toEqual([]);
      expect(readdirSync(cellDir(name)).filter((e) => e.startsWith(".lazarus-restore-"))).toEqual([]);
      const mine = ledger(state)
        .filter((e) => e.cell === name)
        .map((e) => e.action);
      expect(mine.filter((a) => a === "replace")).toHaveLength(1);
      expect(mine).toContain("recover");
      // Only the new incarnation's uid is claimed under this name.
      const rec = readRecord(cellDir(name));
      const claims = readdirSync(path.join(state, "uids")).filter((u) =>
        readFileSync(path.join(state, "uids", u), "utf8").startsWith(`${name} `),
      );
      expect(claims).toEqual([String(rec.sandbox?.uid)]);
      expect((await run("plan", "--detailed-exitcode")).exitCode).toBe(0);
    },
    300_000,
  );

  // The other way: killed after the old sandbox's checkpoint, restore or release, the next run
  // still gives its uid and cgroup back.
  it.each([["replace:checkpointed"], ["replace:restored"], ["replace:released"]])(
    "converges sandbox → process after a kill -9 at %s, and the sandbox's uid is given back",
    async (point) => {
      const name = `b-${point.replace(/[^a-z]+/g, "-")}`.replace(/-+$/, "");
      const old = await processCell(name);
      declare(name, "sandbox");
      expect((await run("apply", "--yes")).exitCode).toBe(0);
      const uid = await expectSandboxed(name, old);
      const boxed = readRecord(cellDir(name));
      declare(name, "process");
      const killed = await lazarus(["apply", "--yes", "-c", cfg, "-s", state], {
        env: { ...env, LAZARUS_FAILPOINT: point },
      });
      expect(killed.signal, killed.stdout + killed.stderr).toBe("SIGKILL");
      const again = await run("apply", "--yes");
      expect(again.exitCode, again.stdout + again.stderr).toBe(0);
      const rec = readRecord(cellDir(name));
      expect([rec.backend, rec.sandbox, rec.replacing]).toEqual(["process", undefined, undefined]);
      expect(gone(boxed.members[0]?.pid, boxed.members[0]?.startTime)).toBe(true);
      expect(uidPids(uid)).toEqual([]);
      expect(cgroupPids(boxed.sandbox?.cgroup as string)).toEqual([]);
      expect(existsSync(path.join(state, "uids", String(uid)))).toBe(false);
      await waitFor(() => readUid(name) === "0", 30_000);
      expect(readFileSync(path.join(cellDir(name), "project", "keep.txt"), "utf8")).toBe("the work\n");
      expect((await run("plan", "--detailed-exitcode")).exitCode).toBe(0);
    },
    300_000,
  );
});

// The container backend (podman or docker, as the host has): process → container, a change of
// image (a replacement too: the members' whole filesystem), and back to process.
describe.skipIf(containerSkip)("a replacement onto and between containers", () => {
  const band = uidBand("integration/replace-container");
  const env = { LAZARUS_UID_RANGE: band.range };
  const state = tempDir("lazarus-ctr-");
  const cfg = configDir({});
  const run = (...args: string[]) => lazarus([...args, "-c", cfg, "-s", state], { env });
  const seen: string[] = []; // every incarnation, to remove whatever containers they left
  // The same image under a second name of this file's own (removed after).
  const IMAGE2 = `localhost/lazarus-test:replace-${process.pid}`;
  afterAll(async () => {
    await cleanupContainers(state, seen);
    killAll(state); // the process-backend members the suite ends with (their groups, not only the supervisors)
    spawnSync(engine.bin as string, ["rmi", IMAGE2], { stdio: "ignore" });
    for (const d of [state, cfg]) rmSync(d, { recursive: true, force: true });
  });
  const dir = path.join(state, "cells", "boat");
  const uidTxt = path.join(dir, "home", "w", "uid.txt");
  const declare = (extra?: string) =>
    writeFileSync(
      path.join(cfg, "cells.d", "boat.yaml"),
      cellYaml({ name: "boat", ...(extra ? { extra } : {}), members: [member] }),
    );
  const readUid = (): string | undefined => (existsSync(uidTxt) ? readFileSync(uidTxt, "utf8").trim() : undefined);

  it("moves a process cell into containers, to another image, and back, keeping its files and leaving no container behind", async () => {
    expect(spawnSync(engine.bin as string, ["tag", IMAGE, IMAGE2]).status).toBe(0);
    declare();
    expect((await run("apply", "--yes")).exitCode).toBe(0);
    await waitFor(() => readUid() === "0", 30_000);
    writeFileSync(path.join(dir, "project", "keep.txt"), "the work\n");
    const p0 = readRecord(dir);
    seen.push(p0.uid);

    declare(`  backend: container\n  container: {image: "${IMAGE}"}`);
    expect((await run("plan")).stdout).toMatch(
      new RegExp(`^-/\\+ replace\\s+boat\\s+spec\\.backend process → container ${IMAGE} forces replacement`, "m"),
    );
    const toC = await run("apply", "--yes");
    expect(toC.exitCode, toC.stdout + toC.stderr).toBe(0);
    const c1 = readRecord(dir);
    seen.push(c1.uid);
    const uid = c1.containerUid?.uid as number;
    expect(c1.backend).toBe("container");
    expect(uid).toBeGreaterThanOrEqual(band.first);
    expect(uid).toBeLessThanOrEqual(band.last);
    expect(gone(p0.members[0]?.pid, p0.members[0]?.startTime)).toBe(true);
    await waitFor(() => readUid() === String(uid), 120_000);
    await waitFor(() => containersOf([c1.uid]).length === 1, 120_000);
    expect(statSync(path.join(dir, "project", "keep.txt")).uid).toBe(uid);
    const st = JSON.parse((await run("status", "boat", "--json")).stdout) as { cells: StatusCell[] };
    const name = `lazarus-${readRecord(dir).members[0]?.spawnId}`;
    expect(st.cells[0]).toMatchObject({
      backend: "container",
      where: { host: hostname(), engine: engine.kind, image: IMAGE, uid },
      members: [{ where: { container: name } }],
    });
    expect(containersOf([c1.uid])).toEqual([name]);
    expect((await run("status", "boat")).stdout).toMatch(
      new RegExp(`on container at ${hostname()}: ${engine.kind}, image ${IMAGE}, uid ${uid}[\\s\\S]*container ${name}`),
    );

    declare(`  backend: container\n  container: {image: "${IMAGE2}"}`);
    const plan = await run("plan");
    expect(plan.stdout).toMatch(
      new RegExp(
        `^-/\\+ replace\\s+boat\\s+spec\\.container\\.image container ${IMAGE} → container ${IMAGE2} forces replacement`,
        "m",
      ),
    );
    expect(plan.stdout).not.toMatch(/~ update/);
    const toC2 = await run("apply", "--yes");
    expect(toC2.exitCode, toC2.stdout + toC2.stderr).toBe(0);
    const c2 = readRecord(dir);
    seen.push(c2.uid);
    expect(containersOf([c1.uid])).toEqual([]); // the old incarnation's container is gone
    await waitFor(() => containersOf([c2.uid]).length === 1, 120_000);
    const image = spawnSync(
      engine.bin as string,
      ["inspect", "--format", "{{.ImageName}}", containersOf([c2.uid])[0] as string],
      { encoding: "utf8" },
    );
    expect(image.stdout.trim()).toContain(IMAGE2.replace(/^localhost\//, ""));
    expect(existsSync(path.join(state, "uids", String(uid)))).toBe(false); // the old uid given back
    await waitFor(() => readUid() === String(c2.containerUid?.uid), 120_000);

    declare();
    const back = await run("apply", "--yes");
    expect(back.exitCode, back.stdout + back.stderr).toBe(0);
    const p1 = readRecord(dir);
    seen.push(p1.uid);
    expect([p1.backend, p1.containerUid, p1.container]).toEqual(["process", undefined, undefined]);
    expect(containersOf([c2.uid])).toEqual([]);
    await waitFor(() => readUid() === "0", 30_000);
    expect(readFileSync(path.join(dir, "project", "keep.txt"), "utf8")).toBe("the work\n");
    const replaced = readFileSync(path.join(state, "ledger.jsonl"), "utf8")
      .split("\n")
      .filter((l) => l.includes('"action":"replace"'))
      .map((l) => (JSON.parse(l) as LedgerEntry).details?.to);
    expect(replaced).toEqual([`container ${IMAGE}`, `container ${IMAGE2}`, "process"]);
    expect((await run("plan", "--detailed-exitcode")).exitCode).toBe(0);
  }, 600_000);
});
