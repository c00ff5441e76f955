// lazarus verify: all ✓ for a sandboxed cell, an honest ✗ where a cell opted into the host
// network, and the list of what the process backend does not enforce.
import { rmSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { cellYaml, configDir, lazarus, tempDir } from "../helpers.js";
import { FIXTURES, cleanupCgroups, sandboxEnv, sandboxStateDir, skipReason } from "./helpers.js";

const sleeper = ["sleep", "1000"];
interface Report {
  formatVersion: number;
  cells: {
    name: string;
    backend: string;
    checks: { invariant: string; check: string; member?: string; ok: boolean; detail: string }[];
  }[];
}

describe.skipIf(skipReason)("lazarus verify", () => {
  // an operator bind under /tmp: bubblewrap makes its mount point in the sandbox's /tmp, which
  // must not count as residue
  const tools = tempDir("lazarus-tools-");
  const env = sandboxEnv("sandbox/verify", { LAZARUS_SANDBOX_BINDS: `${FIXTURES}:${tools}` });
  const state = sandboxStateDir();
  const cfg = configDir({
    "cells.d/a.yaml": cellYaml({
      name: "boxed",
      extra: "  backend: sandbox\n  resources: {pids: 48}",
      members: [
        { identity: "agent:exec", command: sleeper },
        { identity: "agent:watcher", role: "observer", command: sleeper },
      ],
    }),
    "cells.d/b.yaml": cellYaml({
      name: "open",
      extra: "  backend: sandbox\n  network: host",
      members: [{ identity: "agent:net", command: sleeper }],
    }),
    "cells.d/c.yaml": cellYaml({ name: "trusted", members: [{ identity: "agent:plain", command: sleeper }] }),
  });
  const run = (...args: string[]) => lazarus([...args, "-s", state], { env });
  afterAll(async () => {
    for (const f of ["a", "b", "c"]) rmSync(`${cfg}/cells.d/${f}.yaml`, { force: true });
    await lazarus(["apply", "--yes", "-c", cfg, "-s", state], { env });
    await cleanupCgroups(env.LAZARUS_CGROUP_ROOT as string);
    for (const d of [state, cfg, tools]) rmSync(d, { recursive: true, force: true });
  }, 120_000); // an apply that stops three cells' members: longer than 30 s on a loaded 2-core host

  it("shows network host in the plan, then proves every invariant of a sandboxed cell from inside each member", async () => {
    const plan = await lazarus(["plan", "-c", cfg, "-s", state], { env });
    expect(plan.stdout).toMatch(/open .*sandbox, network host/);
    expect(plan.stdout).toMatch(/boxed .*sandbox, network none/);
    expect((await lazarus(["apply", "--yes", "-c", cfg, "-s", state], { env })).exitCode).toBe(0);
    const r = await run("verify", "boxed", "--json");
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as Report;
    expect(report.formatVersion).toBe(1);
    const boxed = report.cells[0];
    expect(boxed?.name).toBe("boxed");
    expect(new Set(boxed?.checks.map((c) => c.invariant))).toEqual(new Set(["I1", "I2", "I3", "I4", "I5", "I6"]));
    expect(boxed?.checks.filter((c) => !c.ok)).toEqual([]);
    for (const member of ["agent:exec", "agent:watcher"]) {
      const mine = boxed?.checks.filter((c) => c.member === member).map((c) => c.check);
      expect(mine).toEqual(
        expect.arrayContaining([
          "write outside the cell",
          "read a sibling cell",
          "read another member's home",
          "see a host or sibling process",
          "exceed the pid limit",
          "reach a server on the host's loopback",
          "find residue in /tmp or /dev/shm",
          "host environment",
        ]),
      );
    }
    const text = await run("verify", "boxed");
    expect(text.stdout).toMatch(/boxed\s+sandbox\s+✓\s+✓\s+✓\s+✓\s+✓\s+✓/);
  }, 240_000); // plan, apply and two verifies of sandboxed members: past a minute on a loaded 2-core host

  it("reports ✗ with a reason for a cell on the host network and for what the process backend does not enforce", async () => {
    const r = await run("verify", "--json");
    expect(r.exitCode).toBe(1);
    const report = JSON.parse(r.stdout) as Report;
    const open = report.cells.find((c) => c.name === "open");
    const openFailed = open?.checks.filter((c) => !c.ok) ?? [];
    expect(
      openFailed.map((c) => c.invariant),
      JSON.stringify(openFailed),
    ).toEqual(["I4"]);
    expect(open?.checks.find((c) => !c.ok)?.detail).toContain("network: host");
    const trusted = report.cells.find((c) => c.name === "trusted");
    const failed = trusted?.checks.filter((c) => !c.ok) ?? [];
    expect(failed.map((c) => c.invariant)).toEqual(["I1", "I1", "I2", "I3", "I4", "I5"]);
    expect(failed.find((c) => c.check === "disk quota")?.detail).toMatch(/can fill the one that holds the state dir/);
    for (const c of failed) expect(c.detail).toMatch(/^not enforced by backend process/);
    expect(trusted?.checks.find((c) => c.invariant === "I6")?.ok).toBe(true);
    const text = await run("verify");
    expect(text.stdout).toMatch(/trusted\s+process\s+✗\s+✗\s+✗\s+✗\s+✗\s+✓/);
    expect(text.stdout).toContain("not enforced by backend process");
  }, 240_000); // verify forks past the pid limit in each member: minutes on a loaded 2-core host

  it("refuses an unknown cell name", async () => {
    const r = await run("verify", "nosuch");
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("no live cell named nosuch");
  });
});
