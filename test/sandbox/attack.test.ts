// An attacker member in a sandboxed cell tries each escape the issue names; every one must fail,
// while the same member can still do its own work. Real bubblewrap, real cgroups, real uids.
import { existsSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cellYaml, configDir, lazarus, readRecord, tempDir, waitFor } from "../helpers.js";
import {
  FIXTURES,
  cgroupPids,
  cleanupCgroups,
  procState,
  sandboxEnv,
  sandboxStateDir,
  skipReason,
  uidPids,
} from "./helpers.js";

const ATTACKER = path.join(FIXTURES, "attacker.mjs");
const sleeper = ["node", "-e", "setInterval(() => {}, 1 << 30)"];

describe.skipIf(skipReason)("an attacker member in a sandboxed cell", () => {
  const env = sandboxEnv("sandbox/attack");
  const state = sandboxStateDir();
  const outside = tempDir("lazarus-outside-");
  const cfg = configDir({});
  let server: net.Server;
  let port = 0;
  let connections = 0;
  const run = (...args: string[]) => lazarus([...args, "-c", cfg, "-s", state], { env });
  const write = (name: string, text: string) => writeFileSync(path.join(cfg, "cells.d", name), text);
  const cell = (name: string) => path.join(state, "cells", name);

  beforeAll(async () => {
    server = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as net.AddressInfo).port;
  });
  afterAll(async () => {
    server.close();
    await cleanupCgroups(env.LAZARUS_CGROUP_ROOT as string);
    for (const d of [state, outside, cfg]) rmSync(d, { recursive: true, force: true });
  });

  it("cannot read, write, see, signal or reach anything beyond its own view, and cannot outlive close", async () => {
    write(
      "victim.yaml",
      cellYaml({ name: "victim", extra: "  backend: sandbox", members: [{ identity: "agent:vic", command: sleeper }] }),
    );
    expect((await run("apply", "--yes")).exitCode).toBe(0);
    writeFileSync(path.join(cell("victim"), "project", "secret.txt"), "victim's work\n", { mode: 0o644 });
    const victim = readRecord(cell("victim"));
    const victimGroup = victim.sandbox?.cgroup as string;
    await waitFor(() => cgroupPids(victimGroup).some((p) => readFileSync(`/proc/${p}/comm`, "utf8").trim() === "node"));
    const victimNode = cgroupPids(victimGroup).find(
      (p) => readFileSync(`/proc/${p}/comm`, "utf8").trim() === "node",
    ) as number;

    const attackEnv = {
      VICTIM_DIR: cell("victim"),
      STATE_DIR: state,
      OWN_DIR: cell("evil"),
      OUTSIDE_FILE: path.join(outside, "escaped.txt"),
      HOST_PID: String(process.pid),
      VICTIM_PID: String(victimNode),
      HOST_PORT: String(port),
    };
    write(
      "evil.yaml",
      cellYaml({
        name: "evil",
        extra: "  backend: sandbox",
        members: [
          { identity: "agent:mallory", command: ["node", ATTACKER], env: attackEnv },
          { identity: "agent:other", command: sleeper },
        ],
      }),
    );
    expect((await run("apply", "--yes")).exitCode).toBe(0);
    const report = path.join(cell("evil"), "home", "mallory", "attack.json");
    await waitFor(() => existsSync(report) && readFileSync(report, "utf8").includes("connectHostLoopback"), 15_000);
    const results = JSON.parse(readFileSync(report, "utf8")) as Record<string, { ok: boolean; detail: string }>;

    // Its own work still works: the test would pass vacuously if nothing ran.
    expect(results.writeProject?.ok).toBe(true);
    expect(existsSync(path.join(cell("evil"), "project", "mine.txt"))).toBe(true);
    for (const attack of [
      "readSiblingProject",
      "readSiblingCredentials",
      "readStateDir",
      "writeOwnRecord",
      "writeOutside",
      "readShadow",
      "readOtherHome",
      "seeHostProcess",
      "signalVictim",
      "connectHostLoopback",
      "unshareUser",
    ]) {
      expect({ attack, ...results[attack] }).toMatchObject({ attack, ok: false });
    }
    // The state dir's path shows in mountinfo only as the source of the cell's own dirs (this
    // cell has no disk image: docs/isolation.md says so), never of its secrets or Lazarus's files.
    expect(results.mountinfoShowsStateDir?.detail).toBe("/cell/home/mallory,/cell/project,/cell/shared");
    // refused by the kernel (bubblewrap's --disable-userns), not for want of an unshare program
    expect(results.unshareUser?.detail).toMatch(/unshare failed: (No space left on device|Operation not permitted)/);
    expect(existsSync(attackEnv.OUTSIDE_FILE)).toBe(false);
    expect(connections).toBe(0);
    expect(procState(victimNode)).not.toBe("Z");
    expect(procState(victimNode)).toBeDefined();

    // Close: the setsid'd escapee dies with the cell; nothing of its uid is left.
    const evil = readRecord(cell("evil"));
    const uid = evil.sandbox?.uid as number;
    expect(uid).not.toBe(victim.sandbox?.uid);
    await waitFor(() => existsSync(path.join(cell("evil"), "home", "mallory", "escapee.txt")), 5000);
    expect(uidPids(uid).length).toBeGreaterThan(0);
    rmSync(path.join(cfg, "cells.d", "evil.yaml"));
    const closed = await run("apply", "--yes");
    expect(closed.exitCode).toBe(0);
    expect(uidPids(uid)).toEqual([]);
    expect(cgroupPids(evil.sandbox?.cgroup as string)).toEqual([]);
    // and the victim still runs
    expect(procState(victimNode)).toBeDefined();
    expect((await run("plan", "--detailed-exitcode")).exitCode).not.toBe(1);
  });
});
