// A member whose process lives but whose environment the observer may not read (another uid:
// EACCES on /proc/PID/environ) is unknown, not gone: plan proposes no member-down and no
// cell-down for it, and status says "unknown". Real processes: the member runs as root (this
// test's user); plan and status run as uid 65534, which may not read a root process's environ.
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { AGENT, CLI, cellYaml, cleanup, configDir, isAlive, lazarus, readRecord, tempDir, waitFor } from "../helpers.js";
import { execa } from "execa";

const NOBODY = 65534;
const root = process.getuid?.() === 0;
if (!root) console.log("skipping: reading another user's /proc/PID/environ needs this test to run as root (it runs plan as uid 65534)");

const made: string[] = [];
afterEach(() => cleanup(...made.splice(0)));

// The real CLI as uid/gid 65534.
async function asNobody(args: string[]) {
  const r = await execa("node", [CLI, ...args], { reject: false, uid: NOBODY, gid: NOBODY, env: { NO_COLOR: "1", HOME: "/tmp" } });
  return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

describe.skipIf(!root)("a member whose environment cannot be read", () => {
  it("is unknown, not gone: no member-down, no cell-down, status unknown", async () => {
    const state = tempDir("lazarus-state-");
    const config = configDir({ "cells.d/a.yaml": cellYaml({ name: "a", members: [{ identity: "agent:allegro", command: ["node", AGENT] }] }) });
    made.push(state, config);
    const args = ["--config", config, "--state-dir", state];
    expect((await lazarus(["apply", "--yes", ...args])).exitCode).toBe(0);
    const m = readRecord(path.join(state, "cells", "a")).members[0]!;
    expect(isAlive(m.pid, m.startTime)).toBe(true);
    await execa("chmod", ["-R", "a+rX", state, config]); // uid 65534 may read this test's trees (mkdtemp makes them 0700)

    const plan = await asNobody(["plan", "--detailed-exitcode", ...args]);
    expect(plan.stdout, plan.stderr).not.toMatch(/member-down|cell-down/);
    expect(plan.exitCode, `${plan.stdout}\n${plan.stderr}`).toBe(0); // no changes
    expect(`${plan.stdout}\n${plan.stderr}`).toContain("agent:allegro is unknown");
    const status = await asNobody(["status", "--json", "--state-dir", state]);
    expect(status.exitCode, status.stderr).toBe(0);
    const members = (JSON.parse(status.stdout) as { cells: { name: string; members: { status: string; pid: number | null }[] }[] }).cells.find((c) => c.name === "a")?.members;
    expect(members?.[0]).toMatchObject({ status: "unknown", pid: m.pid });

    // Gone is still gone for the same observer: the member killed, plan proposes its member-down.
    process.kill(-(m.pid as number), "SIGKILL");
    await waitFor(() => !isAlive(m.pid, m.startTime));
    const after = await asNobody(["plan", ...args]);
    expect(after.stdout).toContain("member-down");
  });
});
