// Checkpoints and restores of sandboxed cells: the snapshot is taken with the cell's cgroup
// frozen, and a restore runs as the cell's own uid, so restored files belong to the new cell.
import { chownSync, existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cellYaml, configDir, isAlive, lazarus, readRecord, waitFor } from "../helpers.js";
import { cleanupCgroups, sandboxEnv, sandboxStateDir, skipReason } from "./helpers.js";

const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();
const writer = ["sh", "-c", 'echo "written inside" > /cell/project/work.txt; exec sleep 1000'];

describe.skipIf(skipReason)("checkpoints of sandboxed cells", () => {
  const env = sandboxEnv("sandbox/memory");
  const state = sandboxStateDir();
  const cfg = configDir({});
  const run = (...args: string[]) => lazarus([...args, "-c", cfg, "-s", state], { env });
  const live = (n: string) => path.join(state, "cells", n);
  afterAll(async () => {
    await cleanupCgroups(env.LAZARUS_CGROUP_ROOT as string);
    for (const d of [state, cfg]) rmSync(d, { recursive: true, force: true });
  });

  it("carries a member's work through close, scrub and a new incarnation, owned by the new cell's uid", async () => {
    const yaml = (extra = "") =>
      cellYaml({
        name: "keep",
        extra: `  backend: sandbox${extra}`,
        members: [{ identity: "agent:w", command: writer }],
      });
    writeFileSync(path.join(cfg, "cells.d", "k.yaml"), yaml());
    expect((await run("apply", "--yes", "--now", T(0))).exitCode).toBe(0);
    await waitFor(() => existsSync(path.join(live("keep"), "project", "work.txt")));
    const first = readRecord(live("keep"));
    expect(statSync(path.join(live("keep"), "project", "work.txt")).uid).toBe(first.sandbox?.uid);
    const cp = await run("checkpoint", "keep", "--now", T(1));
    expect(cp.exitCode, cp.stderr).toBe(0);
    writeFileSync(
      path.join(cfg, "cells.d", "k.yaml"),
      cellYaml({
        name: "keep",
        state: "closed",
        extra: "  backend: sandbox",
        members: [{ identity: "agent:w", command: writer }],
      }),
    );
    expect((await run("apply", "--yes", "--now", T(10))).exitCode).toBe(0);
    expect((await run("apply", "--yes", "--now", T(60))).exitCode).toBe(0); // scrubbed, uid released
    expect(existsSync(live("keep"))).toBe(false);
    // a cell created first in the next apply takes the uid keep gave back, so keep gets another
    writeFileSync(
      path.join(cfg, "cells.d", "aaa.yaml"),
      cellYaml({
        name: "aaa",
        extra: "  backend: sandbox",
        members: [{ identity: "agent:o", command: ["sleep", "1000"] }],
      }),
    );
    writeFileSync(path.join(cfg, "cells.d", "k.yaml"), yaml("\n  restoreFrom: last"));
    // --parallelism 1: cells claim uids in plan order (concurrently, keep could take its old uid back first)
    const applied = await run("apply", "--yes", "--parallelism", "1", "--now", T(70));
    expect(applied.exitCode, applied.stderr + applied.stdout + JSON.stringify(readRecord(live("keep")).sandbox)).toBe(
      0,
    );
    const second = readRecord(live("keep"));
    expect(second.restoredFrom).toBeDefined();
    expect(second.sandbox?.uid).not.toBe(first.sandbox?.uid);
    const restored = path.join(live("keep"), "project", "work.txt");
    expect(readFileSync(restored, "utf8")).toBe("written inside\n");
    expect(statSync(restored).uid).toBe(second.sandbox?.uid);
    // and the new incarnation's member writes it again as its own uid
    await waitFor(() => statSync(restored).mtimeMs > Date.now() - 60_000);
  });

  it("gives a substitute the checkpoint's project/ and shared/ by stage-and-swap as the cell's uid, leaving nothing staged", async () => {
    const stopFile = "/cell/shared/stop";
    const yaml = cellYaml({
      name: "subst",
      extra: "  backend: sandbox\n  policy: {allowSubstitutes: true}",
      members: [
        {
          identity: "agent:allegro",
          role: "executor",
          command: ["sh", "-c", `while [ ! -e ${stopFile} ]; do sleep 0.2; done; exit 3`],
          restart: "never",
        },
        { identity: "agent:ezra", role: "substitute", command: ["sleep", "1000"], replaces: "agent:allegro" },
      ],
    });
    writeFileSync(path.join(cfg, "cells.d", "s.yaml"), yaml);
    expect((await run("apply", "--yes", "--now", T(100))).exitCode).toBe(0);
    const dir = live("subst");
    const rec = readRecord(dir);
    const uid = rec.sandbox?.uid as number;
    const put = (rel: string, text: string) => {
      writeFileSync(path.join(dir, rel), text);
      chownSync(path.join(dir, rel), uid, uid);
    };
    put("project/work.txt", "checkpointed\n");
    put("shared/notes.md", "checkpointed notes\n");
    expect((await run("checkpoint", "subst", "--now", T(101))).exitCode).toBe(0);
    put("project/work.txt", "later\n");
    put("shared/stop", "");
    const allegro = rec.members.find((m) => m.identity === "agent:allegro");
    await waitFor(() => !isAlive(allegro?.pid, allegro?.startTime), 10_000);
    const r = await run("apply", "--yes", "--now", T(102));
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(readFileSync(path.join(dir, "project", "work.txt"), "utf8")).toBe("checkpointed\n");
    expect(statSync(path.join(dir, "project", "work.txt")).uid).toBe(uid);
    expect(statSync(path.join(dir, "project")).uid).toBe(uid);
    expect(existsSync(path.join(dir, "shared", "stop"))).toBe(false);
    expect(readdirSync(dir).filter((e) => e.startsWith(".lazarus-restore-"))).toEqual([]);
    expect(readRecord(dir).members.find((m) => m.identity === "agent:ezra")?.status).toBe("running");
  });
});
