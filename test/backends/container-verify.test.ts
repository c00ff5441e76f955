// lazarus verify probes container cells: the same probe as for the sandbox, run in a fresh
// container with each member's mounts, uid, limits and network, checked on the host too; an
// honest ✗ for a cell that opted into the host network; no probe container left behind.
import { rmSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cellYaml, configDir, lazarus, readRecord, tempDir, waitFor, uidBand } from "../helpers.js";
import { IMAGE, cleanupContainers, containersOf, skipReason } from "./container-helpers.js";

interface Report {
  formatVersion: number;
  cells: {
    name: string;
    backend: string;
    checks: { invariant: string; check: string; member?: string; ok: boolean; detail: string }[];
  }[];
}

const sleeper = ["sleep", "100000"];

describe.skipIf(skipReason)("lazarus verify on container cells", () => {
  const env = { LAZARUS_UID_RANGE: uidBand("backends/container-verify").range };
  const state = tempDir("lazarus-ctr-verify-");
  const cfg = configDir({
    "cells.d/a.yaml": cellYaml({
      name: "crate",
      extra: `  backend: container\n  container: {image: "${IMAGE}"}\n  resources: {pids: 40}`,
      members: [
        { identity: "agent:exec", command: sleeper },
        { identity: "agent:watcher", role: "observer", command: sleeper },
      ],
    }),
    "cells.d/b.yaml": cellYaml({
      name: "porous",
      extra: `  backend: container\n  container: {image: "${IMAGE}"}\n  network: host`,
      members: [{ identity: "agent:net", command: sleeper }],
    }),
  });
  const run = (...args: string[]) =>
    lazarus([...args, ...(args[0] === "verify" ? [] : ["-c", cfg]), "-s", state], { env });
  const uids: string[] = [];
  afterAll(async () => {
    await cleanupContainers(state, uids);
    for (const d of [state, cfg]) rmSync(d, { recursive: true, force: true });
  });

  it("proves every invariant from inside each member's container, and leaves no probe container", async () => {
    expect((await run("apply", "--yes")).exitCode).toBe(0);
    const rec = readRecord(path.join(state, "cells", "crate"));
    uids.push(rec.uid, readRecord(path.join(state, "cells", "porous")).uid);
    await waitFor(() => containersOf([rec.uid]).length === 2, 120_000);
    const r = await run("verify", "crate", "--json");
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const crate = (JSON.parse(r.stdout) as Report).cells[0];
    expect(crate?.backend).toBe("container");
    expect(new Set(crate?.checks.map((c) => c.invariant))).toEqual(new Set(["I1", "I2", "I3", "I4", "I5", "I6"]));
    expect(crate?.checks.filter((c) => !c.ok)).toEqual([]);
    for (const member of ["agent:exec", "agent:watcher"]) {
      const mine = crate?.checks.filter((c) => c.member === member).map((c) => c.check);
      expect(mine).toEqual(
        expect.arrayContaining([
          "write outside the cell",
          "read a sibling cell",
          "read another member's home",
          "read the state dir or another cell's credentials",
          "see a host or sibling process",
          "exceed the pid limit",
          "reach a server on the host's loopback",
          "find residue in /tmp or /dev/shm",
          "host environment",
        ]),
      );
    }
    expect(
      crate?.checks.find((c) => c.member === "agent:exec" && c.check === "exceed the pid limit")?.detail,
    ).toContain("limit 40");
    // the probes ran in containers of their own, removed after: only the members' are left
    const names = rec.members.map((m) => `lazarus-${m.spawnId}`).sort();
    expect(containersOf([rec.uid]).sort()).toEqual(names);
    expect((await run("verify", "crate")).stdout).toMatch(/crate\s+container\s+✓\s+✓\s+✓\s+✓\s+✓\s+✓/);
  }, 600_000);

  it("says ✗ with the reason for a container cell on the host network", async () => {
    const r = await run("verify", "porous", "--json");
    expect(r.exitCode).toBe(1);
    const porous = (JSON.parse(r.stdout) as Report).cells[0];
    expect(porous?.checks.filter((c) => !c.ok).map((c) => c.invariant)).toEqual(["I4"]);
    expect(porous?.checks.find((c) => !c.ok)?.detail).toContain("network: host");
  }, 600_000);
});
