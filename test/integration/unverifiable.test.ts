// A member whose process lives but whose environment the observer may not read (another uid:
// EACCES on /proc/PID/environ) is unknown, not gone: plan proposes no member-down and no
// cell-down for it, and status says "unknown". Real processes: the member runs as root (this
// test's user); plan and status run as uid 65534, which may not read a root process's environ.
import { existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  AGENT,
  CLI,
  ROOT,
  cellYaml,
  cleanup,
  configDir,
  isAlive,
  lazarus,
  readRecord,
  tempDir,
  waitFor,
} from "../helpers.js";
import type { CellRecord } from "../../src/cells/record.js";
import { execa } from "execa";

const NOBODY = 65534;
const root = process.getuid?.() === 0;
if (!root)
  console.log(
    "skipping: reading another user's /proc/PID/environ needs this test to run as root (it runs plan as uid 65534)",
  );

const made: string[] = [];
afterEach(() => cleanup(...made.splice(0)));

const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();

// The real CLI as uid/gid 65534.
async function asNobody(args: string[]) {
  return nobodyRuns(["node", CLI, ...args]);
}

async function nobodyRuns([file, ...args]: string[]) {
  const r = await execa(file as string, args, {
    reject: false,
    uid: NOBODY,
    gid: NOBODY,
    env: { NO_COLOR: "1", HOME: "/tmp" },
  });
  return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

describe.skipIf(!root)("a member whose environment cannot be read", () => {
  it("is unknown, not gone: no member-down, no cell-down, status unknown", async () => {
    const state = tempDir("lazarus-state-");
    const config = configDir({
      "cells.d/a.yaml": cellYaml({ name: "a", members: [{ identity: "agent:allegro", command: ["node", AGENT] }] }),
    });
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
    const members = (
      JSON.parse(status.stdout) as { cells: { name: string; members: { status: string; pid: number | null }[] }[] }
    ).cells.find((c) => c.name === "a")?.members;
    expect(members?.[0]).toMatchObject({ status: "unknown", pid: m.pid });

    // Gone is still gone for the same observer: the member killed, plan proposes its member-down.
    process.kill(-(m.pid as number), "SIGKILL");
    await waitFor(() => !isAlive(m.pid, m.startTime));
    const after = await asNobody(["plan", ...args]);
    expect(after.stdout).toContain("member-down");
  });
});

// The same observer now applies (the state dir handed to uid 65534): a member it cannot prove is
// never stopped, so nothing that needs its stop is done: no restart for a changed command (a
// second copy would start beside it), no removal, no close, no scrub of its tree.
describe.skipIf(!root)("an unknown member is held", () => {
  it("neither restarted, removed, closed nor scrubbed by an observer that cannot prove it", async () => {
    const state = tempDir("lazarus-state-");
    const agent = { identity: "agent:allegro", command: ["node", AGENT] };
    const config = configDir({ "cells.d/a.yaml": cellYaml({ name: "a", grace: "30m", members: [agent] }) });
    made.push(state, config);
    const args = ["--config", config, "--state-dir", state];
    expect((await lazarus(["apply", "--yes", ...args, "--now", T(0)])).exitCode).toBe(0);
    const live = path.join(state, "cells", "a");
    const m = readRecord(live).members[0]!;
    try {
      await execa("chown", ["-R", `${NOBODY}:${NOBODY}`, state]);
      await execa("chmod", ["-R", "a+rwX", config]);
      const write = (yaml: string) => writeFileSync(path.join(config, "cells.d", "a.yaml"), yaml);
      const applyAs = async (minute: number, dir = config) => {
        const r = await asNobody(["apply", "--yes", "--config", dir, "--state-dir", state, "--now", T(minute)]);
        return { ...r, all: `${r.stdout}\n${r.stderr}` };
      };

      write(cellYaml({ name: "a", grace: "30m", members: [{ ...agent, env: { MODE: "new" } }] }));
      const changed = await applyAs(1);
      expect(changed.exitCode, changed.all).toBe(0);
      expect(changed.all).toContain("its restart for the changed command or env waits");
      expect(readRecord(live).members[0]).toMatchObject({ pid: m.pid, status: "running", restarts: 0 });

      write(cellYaml({ name: "a", grace: "30m", members: [{ identity: "human:alexander", role: "director" }] }));
      const removed = await applyAs(2);
      expect(removed.exitCode, removed.all).toBe(0);
      expect(removed.all).toContain("removal held while it is unknown");
      expect(readRecord(live).members.map((x) => x.identity)).toContain("agent:allegro");

      write(cellYaml({ name: "a", grace: "30m", state: "closed", members: [agent] }));
      const closed = await applyAs(3);
      expect(closed.exitCode, closed.all).toBe(0);
      expect(closed.all).toContain("the close of cell a is held: agent:allegro is unknown");
      expect(readRecord(live).state).toBe("active");

      // A graveyard cell (moved there by hand, as a close that could not stop it would have) is
      // not scrubbed after its grace: its tree stays while the member lives.
      const rec = readRecord(live) as CellRecord;
      writeFileSync(
        path.join(live, ".lazarus", "cell.json"),
        JSON.stringify({ ...rec, state: "closed", closedAt: T(3) }),
      );
      mkdirSync(path.join(state, "graveyard"), { recursive: true });
      renameSync(live, path.join(state, "graveyard", "a"));
      await execa("chown", ["-R", `${NOBODY}:${NOBODY}`, state]);
      const empty = configDir({});
      made.push(empty);
      await execa("chmod", ["-R", "a+rwX", empty]);
      const scrubbed = await applyAs(60, empty);
      expect(scrubbed.exitCode, scrubbed.all).toBe(0);
      expect(scrubbed.all).toContain("the scrub of cell a is held");
      expect(existsSync(path.join(state, "graveyard", "a", "home"))).toBe(true);
      expect(isAlive(m.pid, m.startTime)).toBe(true);
    } finally {
      process.kill(-(m.pid as number), "SIGKILL");
    }
  });

  it("the process backend's stop fails (STOP_FAILED) and signals nothing", async () => {
    const state = tempDir("lazarus-state-");
    const config = configDir({
      "cells.d/a.yaml": cellYaml({ name: "a", members: [{ identity: "agent:allegro", command: ["node", AGENT] }] }),
    });
    made.push(state, config);
    expect((await lazarus(["apply", "--yes", "--config", config, "--state-dir", state])).exitCode).toBe(0);
    const m = readRecord(path.join(state, "cells", "a")).members[0]!;
    try {
      const script = `import { ProcessBackend } from ${JSON.stringify(path.join(ROOT, "dist", "backends", "process.js"))};
        await new ProcessBackend().stop({ name: "a", members: [] }, ${JSON.stringify(m)}, 500).then(() => console.log("stopped"), (e) => console.log(e.code, e.message));`;
      const r = await nobodyRuns(["node", "--input-type=module", "-e", script]);
      expect(r.stdout, r.stderr).toMatch(
        /^STOP_FAILED cannot stop agent:allegro of cell a: process \d+ of its group lives but its environment cannot be read/,
      );
      expect(isAlive(m.pid, m.startTime)).toBe(true);
    } finally {
      process.kill(-(m.pid as number), "SIGKILL");
    }
  });
});
