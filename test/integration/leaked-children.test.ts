// A member's leader exits and leaves children in its process group (`sh -c 'sleep 3600 & exit 1'`):
// restart, close and scrub stop that group, so a crash-looping member leaks nothing. Real processes;
// "alive" is read from /proc/*/stat (the group's pgid, state not Z).
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { cellYaml, cleanup, configDir, isAlive, lazarus, readRecord, tempDir, waitFor } from "../helpers.js";
import { spawn } from "node:child_process";
import { ProcessBackend } from "../../src/backends/process.js";
import { procInfo } from "../../src/host/proc.js";
import { which } from "../../src/util/which.js";

const perl = which("perl", process.env.PATH);
if (!perl) console.log("skipping the other-session group test: it needs perl (setpgid without setsid)");
import type { CellRecord, MemberRecord } from "../../src/cells/record.js";

const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();
// The leader's command leaves a child in the group and fails.
const LEAKY = ["sh", "-c", "sleep 3600 & exit 1"];

let dirs: string[] = [];
afterEach(() => {
  cleanup(...dirs);
  dirs = [];
});

// Live (non-zombie) processes whose process group is pgid.
function groupAlive(pgid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(f[2]) === pgid && f[0] !== "Z" && f[0] !== "X") out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

// What the process backend starts a member from, in a scratch state dir.
function startSpec(state: string, home: string, spawnId: string, command: string[]) {
  return {
    cell: "c",
    cellDir: state,
    identity: "agent:leaky",
    home,
    homeName: "home",
    role: "executor",
    command,
    env: {},
    credentialsFile: path.join(state, "creds"),
    logFile: path.join(state, "logs", `${spawnId}.log`),
    logs: { maxBytes: 1 << 20, keep: 1, pump: false },
    exitFile: path.join(state, `${spawnId}.exit`),
    spawnId,
    resources: {},
    configDir: state,
  };
}

// A process backend and a scratch state dir with a member home, for the tests that start a member
// straight through the backend; ref: the record of a member so started.
function backendSetup() {
  const state = tempDir("lazarus-state-");
  dirs.push(state);
  const home = path.join(state, "home");
  mkdirSync(home, { recursive: true });
  const backend = new ProcessBackend({ PATH: process.env.PATH ?? "" });
  const rec = { name: "c", members: [] } as unknown as CellRecord;
  const start = (spawnId: string, command: string[]) => backend.start(rec, startSpec(state, home, spawnId, command));
  return { backend, rec, start };
}

const ref = (pid: number, startTime: number | undefined, spawnId: string): MemberRecord =>
  ({ identity: "agent:leaky", pid, startTime, spawnId, status: "running" }) as MemberRecord;

function member(dir: string): MemberRecord {
  return readRecord(dir).members[0] as MemberRecord;
}

// Wait until the member's leader exited while the sleep it left lives on in its group.
async function leaked(dir: string): Promise<number> {
  const m = member(dir);
  const pgid = m.pid as number;
  await waitFor(() => !isAlive(pgid, m.startTime), 10_000);
  expect(groupAlive(pgid).length, "the sleep outlives its leader").toBeGreaterThan(0);
  return pgid;
}

function setup() {
  const state = tempDir("lazarus-state-");
  const config = configDir({
    "cells.d/c.yaml": cellYaml({
      name: "c",
      grace: "30m",
      members: [{ identity: "agent:leaky", command: LEAKY, restart: "always" }],
    }),
  });
  dirs.push(state, config);
  const apply = (m: number) => lazarus(["apply", "--config", config, "--state-dir", state, "--now", T(m)]);
  return { state, config, apply, live: path.join(state, "cells", "c") };
}

describe("children a member's leader leaves in its process group", () => {
  it("are stopped at restart and at close", async () => {
    const { config, apply, live } = setup();
    expect((await apply(0)).exitCode).toBe(0);
    const first = await leaked(live);

    const restarted = await apply(1); // member-down, then the restart (its backoff is over)
    expect(restarted.exitCode, restarted.stdout + restarted.stderr).toBe(0);
    expect(restarted.stdout).toContain("restart");
    expect(groupAlive(first), "the old group after the restart").toEqual([]);

    const second = await leaked(live);
    expect(second).not.toBe(first);
    writeFileSync(
      path.join(config, "cells.d", "c.yaml"),
      cellYaml({
        name: "c",
        state: "closed",
        members: [{ identity: "agent:leaky", command: LEAKY, restart: "always" }],
      }),
    );
    const closed = await apply(2);
    expect(closed.exitCode, closed.stdout + closed.stderr).toBe(0);
    expect(closed.stdout).toContain("close");
    expect(groupAlive(second), "the group after the close").toEqual([]);
  });

  it("are stopped at scrub (a graveyard cell an earlier close left them in)", async () => {
    const { state, apply, live } = setup();
    expect((await apply(0)).exitCode).toBe(0);
    const pgid = await leaked(live);
    // What a close that did not stop the group left: the cell closed, in the graveyard, its group alive.
    const rec = readRecord(live) as CellRecord;
    rec.state = "closed";
    rec.closedAt = T(1);
    writeFileSync(path.join(live, ".lazarus", "cell.json"), JSON.stringify(rec));
    mkdirSync(path.join(state, "graveyard"), { recursive: true });
    renameSync(live, path.join(state, "graveyard", "c"));

    const scrubbed = await lazarus(["apply", "--config", configDir({}), "--state-dir", state, "--now", T(60)]);
    expect(scrubbed.exitCode, scrubbed.stdout + scrubbed.stderr).toBe(0);
    expect(scrubbed.stdout).toContain("scrub");
    expect(groupAlive(pgid), "the group after the scrub").toEqual([]);
  });

  it("are stopped by the backend's stop, and a group that does not carry the member's spawn id is left alone", async () => {
    const { backend, rec, start } = backendSetup();
    const started = await start("spawn-a", LEAKY);
    const theirs = ref(started.pid, started.startTime, "spawn-a");
    await waitFor(() => !isAlive(started.pid, started.startTime), 10_000);
    expect(groupAlive(started.pid).length).toBeGreaterThan(0);

    // Another member's record naming this group (its pid and start time, not its spawn id): spared.
    await backend.stop(rec, { ...theirs, spawnId: "spawn-other" }, 1000);
    expect(groupAlive(started.pid).length, "a group not proved the member's is never signalled").toBeGreaterThan(0);

    await backend.stop(rec, theirs, 1000);
    expect(groupAlive(started.pid)).toEqual([]);
  });

  it.skipIf(!perl)(
    "a group in another session is never taken for the member's, even carrying its spawn id and cell",
    async () => {
      // What a reused pid looks like: the recorded leader is gone (its start time no longer
      // matches) and its pid now leads a group made by setpgid (not setsid) in another session,
      // by a process that copied the member's markers into its environment.
      const { backend, rec } = backendSetup();
      const impostor = spawn("perl", ["-e", "setpgrp(0, 0) or die; exec 'sleep', '60'"], {
        env: { PATH: process.env.PATH ?? "", LAZARUS_SPAWN_ID: "spawn-a", CELL_ID: "c" },
        stdio: "ignore",
      });
      const pid = impostor.pid as number;
      try {
        await waitFor(
          () => groupAlive(pid).includes(pid) && readFileSync(`/proc/${pid}/cmdline`, "utf8").startsWith("sleep"),
        );
        const start = procInfo(pid)?.startTime as number;
        await backend.stop(rec, ref(pid, start - 1, "spawn-a"), 500);
        expect(groupAlive(pid), "the impostor's group is spared").toEqual([pid]);
      } finally {
        impostor.kill("SIGKILL");
      }
    },
  );

  it("a child that ignored SIGTERM and cleared its environment still gets SIGKILL: it was seen in the proved group", async () => {
    const { backend, rec, start } = backendSetup();
    const stubborn = ["sh", "-c", `env -i sh -c 'trap "" TERM; while :; do sleep 1; done' & exec sleep 3600`];
    const started = await start("spawn-b", stubborn);
    await waitFor(() => groupAlive(started.pid).length >= 3, 10_000);
    try {
      await backend.stop(rec, ref(started.pid, started.startTime, "spawn-b"), 300);
      expect(groupAlive(started.pid)).toEqual([]);
    } finally {
      if (groupAlive(started.pid).length > 0) process.kill(-started.pid, "SIGKILL"); // the group this test started
    }
  });
});
