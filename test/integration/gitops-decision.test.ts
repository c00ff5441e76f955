// One GitOps decision: `lazarus sync` and `lazarus watch --repo`, fed the same commits, reject and
// hold them with the same words and record each once in the ledger.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { cellYaml, cleanup, lazarus, startWatch, stopWatches, tempDir, waitFor } from "../helpers.js";

const dirs: string[] = [];
afterAll(async () => {
  await stopWatches();
  cleanup(...dirs);
});
const human = (name: string) => cellYaml({ name, members: [{ identity: "human:h", role: "director" }] });
type Status = { lastAttempt?: { revision: string; outcome: string; detail: string } };
const status = (state: string): Status => {
  try {
    return JSON.parse(readFileSync(path.join(state, "gitops", "status.json"), "utf8")) as Status;
  } catch {
    return {};
  }
};
const ledger = (state: string) =>
  readFileSync(path.join(state, "ledger.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { action: string; revision?: string });

describe("the GitOps decision", () => {
  it("is the same in sync and in watch --repo: rejected and held alike, each recorded once", async () => {
    const [bare, work, viaSync, viaWatch] = ["bare", "work", "sync", "watch"].map((p) =>
      tempDir(`lazarus-decide-${p}-`),
    ) as [string, string, string, string];
    dirs.push(bare, work, viaSync, viaWatch);
    const env = { GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@t", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@t" };
    await execa("git", ["init", "-q", "--bare", "-b", "main", bare]);
    await execa("git", ["init", "-q", "-b", "main", work]);
    mkdirSync(path.join(work, "cells.d"));
    const g = (...a: string[]) => execa("git", ["-C", work, ...a], { env });
    const push = async (msg: string, files: Record<string, string | null>) => {
      for (const [f, t] of Object.entries(files)) {
        if (t === null) rmSync(path.join(work, f));
        else writeFileSync(path.join(work, f), t);
      }
      await g("add", "-A");
      await g("commit", "-qm", msg);
      await g("push", "-q", bare, "main");
      return (await g("rev-parse", "HEAD")).stdout.trim();
    };
    const daemon = startWatch(["--repo", bare, "--interval", "1s", "--state-dir", viaWatch, "--tick", "* * * * * *"]);
    try {
      const step = async (sha: string) => {
        await lazarus(["sync", "--repo", bare, "--state-dir", viaSync]);
        await waitFor(() => status(viaWatch).lastAttempt?.revision === sha, 20_000);
        return [status(viaSync).lastAttempt, status(viaWatch).lastAttempt];
      };
      const good = await push("two cells", { "cells.d/a.yaml": human("a"), "cells.d/b.yaml": human("b") });
      const [s1, w1] = await step(good);
      expect(s1?.outcome).toBe("applied");
      expect(w1?.outcome).toBe("applied");

      const broken = await push("two broken files", {
        "cells.d/a.yaml": human("a").replace("owner:", "ownr:"),
        "cells.d/c.yaml": "kind: [",
      });
      const [s2, w2] = await step(broken);
      expect(s2?.outcome).toBe("rejected");
      const { at: _s, ...sRest } = s2 as NonNullable<typeof s2> & { at: string };
      const { at: _w, ...wRest } = w2 as NonNullable<typeof w2> & { at: string };
      expect(wRest).toEqual(sRest);
      expect(s2?.detail).toMatch(/\(and \d+ more\)/);

      const all = await push("remove all", { "cells.d/a.yaml": null, "cells.d/b.yaml": null, "cells.d/c.yaml": null });
      const [s3, w3] = await step(all);
      expect(s3?.outcome).toBe("held");
      expect(w3?.detail).toBe(s3?.detail);
      await new Promise((r) => setTimeout(r, 2_500)); // more polls of the same commits
      await lazarus(["sync", "--repo", bare, "--state-dir", viaSync]);
      for (const state of [viaSync, viaWatch]) {
        expect(ledger(state).filter((e) => e.action === "revision-rejected" && e.revision === broken)).toHaveLength(1);
        expect(ledger(state).filter((e) => e.action === "mass-close-held" && e.revision === all)).toHaveLength(1);
      }
    } finally {
      daemon.child.kill("SIGTERM");
      await daemon.child;
    }
  });

  it("honours an approval in sync as in watch: left for a daemon that stopped, sync lets the held commit through and clears it", async () => {
    const [bare, work, state] = ["bare", "work", "state"].map((p) => tempDir(`lazarus-approve-${p}-`)) as [
      string,
      string,
      string,
    ];
    dirs.push(bare, work, state);
    const env = { GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@t", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@t" };
    await execa("git", ["init", "-q", "--bare", "-b", "main", bare]);
    await execa("git", ["init", "-q", "-b", "main", work]);
    mkdirSync(path.join(work, "cells.d"));
    const g = (...a: string[]) => execa("git", ["-C", work, ...a], { env });
    writeFileSync(path.join(work, "cells.d", "a.yaml"), human("a"));
    writeFileSync(path.join(work, "cells.d", "b.yaml"), human("b"));
    await g("add", "-A");
    await g("commit", "-qm", "two cells");
    await g("push", "-q", bare, "main");
    expect((await lazarus(["sync", "--repo", bare, "--state-dir", state])).exitCode).toBe(0);
    await g("rm", "-q", "cells.d/a.yaml", "cells.d/b.yaml");
    await g("commit", "-qm", "remove all");
    await g("push", "-q", bare, "main");
    const all = (await g("rev-parse", "HEAD")).stdout.trim();
    expect((await lazarus(["sync", "--repo", bare, "--state-dir", state])).exitCode).toBe(1);
    expect(status(state).lastAttempt?.outcome).toBe("held");

    // A daemon that polls once an hour: the approval waits for it, then it stops before its poll.
    const daemon = startWatch(["--repo", bare, "--interval", "1h", "--state-dir", state]);
    try {
      await waitFor(() => daemon.logs.includes("watching"), 20_000); // its first poll is over
      const approved = await lazarus(["apply", "--allow-mass-close", "--state-dir", state]);
      expect(approved.stdout).toContain("Approved");
    } finally {
      daemon.child.kill("SIGTERM");
      await daemon.child;
    }
    const approve = path.join(state, "gitops", "approve");
    expect(readFileSync(approve, "utf8").trim()).toBe(all);
    const r = await lazarus(["sync", "--repo", bare, "--state-dir", state]);
    expect(r.exitCode).toBe(0);
    expect(status(state).lastAttempt).toMatchObject({ revision: all, outcome: "applied" });
    expect(() => readFileSync(approve)).toThrow();
    expect(ledger(state).filter((e) => e.action === "close")).toHaveLength(2);
  });
});
