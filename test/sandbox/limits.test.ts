// Limits and containment of sandboxed members: a fork bomb stops at its pid limit and its
// siblings live; a memory hog is OOM-killed and status says so; close leaves nothing running.
// Both cgroup paths: the v1 controllers, and the v2 tree (containment only where it has no
// controllers, as on a hybrid host).
import { readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { detectCgroups } from "../../src/backends/sandbox/cgroup.js";
import { cellYaml, configDir, readRecord, waitFor } from "../helpers.js";
import { cgroupPids, procState, sandboxSuite, skipReason, uidPids } from "./helpers.js";

const sleeper = ["node", "-e", "setInterval(() => {}, 1 << 30)"];
const v1 = detectCgroups("/sys/fs/cgroup", "v1");
const v2 = detectCgroups("/sys/fs/cgroup", "v2");
if (!skipReason && !v1)
  console.warn("SKIPPED: sandbox limits on cgroup v1: this host mounts no v1 memory/pids/cpu/freezer hierarchy");
if (!skipReason && !v2) console.warn("SKIPPED: sandbox containment on cgroup v2: this host mounts no cgroup2 tree");

describe.skipIf(skipReason || !v1)("sandbox limits (cgroup v1)", () => {
  const { state, cfg, run } = sandboxSuite("sandbox/limits-v1", { LAZARUS_CGROUP_MODE: "v1" });

  it("holds a fork bomb at its pid limit while a sibling cell lives, and close kills it all", async () => {
    const bomb = ["sh", "-c", "b() { b | b & }; b; sleep 1000"];
    configDir(
      {
        "cells.d/bomb.yaml": cellYaml({
          name: "bomb",
          extra: "  backend: sandbox\n  resources: {pids: 40}",
          members: [{ identity: "agent:bomber", command: bomb, restart: "never" }],
        }),
        "cells.d/calm.yaml": cellYaml({
          name: "calm",
          extra: "  backend: sandbox",
          members: [{ identity: "agent:calm", command: sleeper }],
        }),
      },
      cfg,
    );
    expect((await run("apply", "--yes")).exitCode).toBe(0);
    const rec = readRecord(path.join(state, "cells", "bomb"));
    const group = `${rec.sandbox?.cgroup}/bomber`;
    // The kernel counts each fork refused at the limit; the bomb burns out against it.
    const refused = (): number =>
      Number(/^max (\d+)/m.exec(readFileSync(`/sys/fs/cgroup/pids/${group}/pids.events`, "utf8"))?.[1] ?? 0);
    await waitFor(() => refused() > 0, 10_000);
    expect(Number(readFileSync(`/sys/fs/cgroup/pids/${group}/pids.max`, "utf8"))).toBe(40);
    expect(cgroupPids(group).length).toBeLessThanOrEqual(40);
    // The log pump writes what it reads from the member's pipe a moment later: wait for the line.
    await waitFor(
      () => /fork/i.test(readFileSync(path.join(state, "cells", "bomb", ".lazarus", "logs", "bomber.log"), "utf8")),
      10_000,
    );
    const calm = readRecord(path.join(state, "cells", "calm"));
    expect(cgroupPids(calm.sandbox?.cgroup as string).length).toBeGreaterThan(0);
    rmSync(path.join(cfg, "cells.d", "bomb.yaml"));
    expect((await run("apply", "--yes")).exitCode).toBe(0);
    expect(cgroupPids(rec.sandbox?.cgroup as string)).toEqual([]);
    expect(uidPids(rec.sandbox?.uid as number)).toEqual([]);
    expect(cgroupPids(calm.sandbox?.cgroup as string).length).toBeGreaterThan(0);
  });

  it("OOM-kills a member beyond its memory limit and reports it in status", async () => {
    const hog = ["node", "-e", "const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1))"];
    configDir(
      {
        "cells.d/hog.yaml": cellYaml({
          name: "hog",
          extra: "  backend: sandbox\n  resources: {memory: 96Mi}",
          members: [{ identity: "agent:hog", command: hog, restart: "never" }],
        }),
      },
      cfg,
    );
    expect((await run("apply", "--yes")).exitCode).toBe(0);
    const rec = readRecord(path.join(state, "cells", "hog"));
    const exitFile = path.join(state, "cells", "hog", ".lazarus", "logs", "hog.exit");
    await waitFor(() => {
      try {
        return readFileSync(exitFile, "utf8").length > 0;
      } catch {
        return false;
      }
    }, 20_000);
    expect(readFileSync(exitFile, "utf8")).toMatch(/^137 oom_kill=[1-9]/);
    const status = await run("status", "hog", "--json");
    const view = JSON.parse(status.stdout) as { cells: { members: { exitReason: string | null }[] }[] };
    expect(view.cells[0]?.members[0]?.exitReason).toBe("oom");
    expect((await run("status", "hog")).stdout).toContain("OOM-killed");
    await run("apply", "--yes"); // records member-down with its reason
    expect(readRecord(path.join(state, "cells", "hog")).members[0]?.exitReason).toBe("oom");
    expect(procState(rec.members[0]?.pid as number) ?? "gone").toMatch(/gone|Z/);
  });
});

describe.skipIf(skipReason || !v2)("sandbox containment (cgroup v2 tree)", () => {
  const { state, cfg, run } = sandboxSuite("sandbox/limits-v2", { LAZARUS_CGROUP_MODE: "v2" });

  it("kills a setsid'd daemon on close through the v2 cgroup", async () => {
    const escaper = ["sh", "-c", "setsid sh -c 'trap \"\" TERM; while true; do sleep 1; done' & sleep 1000"];
    configDir(
      {
        "cells.d/v2.yaml": cellYaml({
          name: "v2cell",
          extra: "  backend: sandbox",
          members: [{ identity: "agent:esc", command: escaper }],
        }),
      },
      cfg,
    );
    const applied = await run("apply", "--yes");
    expect(applied.exitCode, applied.stderr + applied.stdout).toBe(0);
    const rec = readRecord(path.join(state, "cells", "v2cell"));
    const dir = `${v2?.kind === "v2" ? v2.root : ""}/${rec.sandbox?.cgroup}/esc`;
    await waitFor(() => readFileSync(`${dir}/cgroup.procs`, "utf8").trim().split("\n").length >= 4, 10_000);
    expect(uidPids(rec.sandbox?.uid as number).length).toBeGreaterThan(0);
    rmSync(path.join(cfg, "cells.d", "v2.yaml"));
    expect((await run("apply", "--yes")).exitCode).toBe(0);
    expect(uidPids(rec.sandbox?.uid as number)).toEqual([]);
  });
});
