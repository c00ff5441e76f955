// GitOps against real git repositories made in the test: sync, rejected commits, the deletion
// budget, saved plans, markdown plans, diff, and watch --repo following a bare repo.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import {
  AGENT,
  cellYaml,
  cleanup,
  isAlive,
  lazarus,
  readRecord,
  startWatch,
  stopWatches,
  tempDir,
  waitFor,
} from "../helpers.js";

const dirs: string[] = [];
afterAll(async () => {
  await stopWatches();
  cleanup(...dirs);
});
const SECRET = "hunter2-very-secret-credential";

async function repo() {
  const dir = tempDir("lazarus-repo-");
  dirs.push(dir);
  mkdirSync(path.join(dir, "cells.d"));
  const g = (...args: string[]) =>
    execa("git", ["-C", dir, ...args], {
      env: { GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@t", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@t" },
    });
  await g("init", "-q", "-b", "main");
  const commit = async (msg: string, files: Record<string, string | null>) => {
    for (const [f, text] of Object.entries(files)) {
      if (text === null) rmSync(path.join(dir, f));
      else writeFileSync(path.join(dir, f), text);
    }
    await g("add", "-A");
    await g("commit", "-qm", msg);
    return (await g("rev-parse", "HEAD")).stdout.trim();
  };
  return { dir, commit, g };
}

const human = (name: string, extra?: string) =>
  cellYaml({ name, members: [{ identity: "human:h", role: "director" }], ...(extra ? { extra } : {}) });
const files = (names: string[]) => Object.fromEntries(names.map((n) => [`cells.d/${n}.yaml`, human(n)]));
const ledger = (state: string) =>
  readFileSync(path.join(state, "ledger.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { action: string; cell: string; revision?: string; reason: string });

describe("lazarus sync", () => {
  it("applies a commit whole, rejects a bad one whole, and holds a mass close", async () => {
    const { dir, commit } = await repo();
    const state = tempDir("lazarus-state-");
    dirs.push(state);
    const sync = (...args: string[]) => lazarus(["sync", "--repo", dir, "--state-dir", state, ...args]);
    const good = await commit("eight cells", files(["a", "b", "c", "d", "e", "f", "g", "h"]));
    const r1 = await sync("--json");
    expect(r1.exitCode, r1.stderr).toBe(0);
    expect(JSON.parse(r1.stdout)).toMatchObject({ revision: good, outcome: "applied" });
    expect(
      ledger(state)
        .filter((e) => e.action === "create")
        .every((e) => e.revision === good),
    ).toBe(true);
    expect(readRecord(path.join(state, "cells", "a")).lastAppliedRevision).toBe(good);

    // A commit with a valid new cell and a broken file: nothing of it is applied.
    const bad = await commit("new cell and a typo", {
      "cells.d/new.yaml": human("new"),
      "cells.d/a.yaml": human("a").replace("owner:", "ownr:"),
    });
    const r2 = await sync();
    expect(r2.exitCode).toBe(1);
    expect(r2.stdout).toContain(
      `commit ${bad.slice(0, 12)} rejected: cells.d/a.yaml:6:3: error: spec.owner: missing required field "owner" (add it) (and 1 more)`,
    );
    expect(existsSync(path.join(state, "cells", "new"))).toBe(false);
    const st = JSON.parse((await lazarus(["status", "--json", "--state-dir", state])).stdout);
    expect(st.revision).toMatchObject({ inForce: good, lastAttempted: bad, outcome: "rejected" });
    expect(st.cells[0]).toMatchObject({ lastAppliedRevision: good, lastAttemptedRevision: bad, outcome: "rejected" });
    expect(ledger(state).filter((e) => e.action === "revision-rejected")).toHaveLength(1);
    expect((await sync()).exitCode).toBe(1);
    expect(ledger(state).filter((e) => e.action === "revision-rejected")).toHaveLength(1); // recorded once

    // Removing most files: held by the deletion budget, nothing closed.
    const mass = await commit("remove six", {
      "cells.d/a.yaml": null,
      "cells.d/new.yaml": null,
      ...Object.fromEntries(["b", "c", "d", "e", "f"].map((n) => [`cells.d/${n}.yaml`, null])),
    });
    const r3 = await sync();
    expect(r3.exitCode).toBe(1);
    expect(r3.stdout).toContain("held by the deletion budget: this revision would close 6 of 8 live cells");
    expect(readdirSync(path.join(state, "cells")).sort()).toEqual(["a", "b", "c", "d", "e", "f", "g", "h"]);
    expect(ledger(state).some((e) => e.action === "mass-close-held" && e.revision === mass)).toBe(true);
    const dry = await sync("--dry-run", "--json");
    expect(dry.exitCode).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({
      revision: mass,
      outcome: "dry-run",
      detail: expect.stringContaining("would be held"),
    });
    expect(readdirSync(path.join(state, "cells"))).toHaveLength(8);
    const approve = await lazarus(["apply", "--allow-mass-close", "--state-dir", state]);
    expect(approve.exitCode, approve.stdout + approve.stderr).toBe(0);
    expect(readdirSync(path.join(state, "cells")).sort()).toEqual(["g", "h"]);

    // A plan that closes every cell is always held, whatever the budget says.
    await commit("remove all", { "cells.d/g.yaml": null, "cells.d/h.yaml": null });
    const r4 = await sync("--max-close", "100", "--max-close-percent", "100");
    expect(r4.stdout).toContain("would close every cell (2 of 2)");
    expect(readdirSync(path.join(state, "cells")).sort()).toEqual(["g", "h"]);
  });
});

describe("saved plans", () => {
  it("apply exactly what was planned, and refuse a cell whose observed state changed", async () => {
    const config = tempDir("lazarus-config-");
    const state = tempDir("lazarus-state-");
    dirs.push(config, state);
    mkdirSync(path.join(config, "cells.d"));
    writeFileSync(
      path.join(config, "cells.d/x.yaml"),
      cellYaml({ name: "x", members: [{ identity: "agent:a", command: ["node", AGENT] }] }),
    );
    writeFileSync(
      path.join(config, "cells.d/y.yaml"),
      cellYaml({ name: "y", members: [{ identity: "agent:a", command: ["node", AGENT] }] }),
    );
    const args = ["--config", config, "--state-dir", state];
    expect((await lazarus(["apply", ...args])).exitCode).toBe(0);
    writeFileSync(
      path.join(config, "cells.d/x.yaml"),
      cellYaml({ name: "x", ttl: "6h", members: [{ identity: "agent:a", command: ["node", AGENT] }] }),
    );
    writeFileSync(
      path.join(config, "cells.d/y.yaml"),
      cellYaml({ name: "y", ttl: "6h", members: [{ identity: "agent:a", command: ["node", AGENT] }] }),
    );
    const planFile = path.join(config, "plan.json");
    const p = await lazarus(["plan", "--out", planFile, ...args]);
    expect(p.stderr).toMatch(/Saved the plan \(2 actions, revision content:[0-9a-f]{16}\)/);
    // Behind the plan's back, y's member dies: y's observed state no longer matches.
    const y = readRecord(path.join(state, "cells", "y")).members[0]!;
    process.kill(-(y.pid as number), "SIGKILL");
    await waitFor(() => !isAlive(y.pid, y.startTime));
    const a = await lazarus(["apply", planFile, "--state-dir", state]);
    expect(a.exitCode).toBe(1);
    expect(a.stderr).toContain("refused: cell y changed since the plan was made (stale plan)");
    expect(readRecord(path.join(state, "cells", "x")).ttlMs).toBe(6 * 3_600_000);
    expect(readRecord(path.join(state, "cells", "y")).ttlMs).toBe(4 * 3_600_000);
  });

  it("apply a plan without changes as a no-op that touches nothing", async () => {
    const config = tempDir("lazarus-config-");
    const state = tempDir("lazarus-state-");
    dirs.push(config, state);
    mkdirSync(path.join(config, "cells.d"));
    const planFile = path.join(config, "plan.json");
    await lazarus(["plan", "--out", planFile, "--config", config, "--state-dir", state]);
    const r = await lazarus(["apply", planFile, "--state-dir", state]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("nothing was touched");
    expect(readdirSync(state)).toEqual([]);
  });
});

describe("reviewable output", () => {
  it("never shows a credential value in markdown or JSON plans, and shows a change as redacted", async () => {
    const { dir, commit } = await repo();
    const state = tempDir("lazarus-state-");
    const secrets = tempDir("lazarus-secrets-");
    dirs.push(state, secrets);
    writeFileSync(path.join(secrets, "token"), SECRET);
    writeFileSync(path.join(secrets, "token2"), `${SECRET}-2`);
    const withSecrets = (args: string[]) => lazarus(args, { env: { LAZARUS_SECRETS_DIR: secrets } });
    const sha = await commit("cell with a credential", {
      "cells.d/c.yaml": human("c", "  credentials:\n    TOKEN: {file: token}"),
    });
    expect((await withSecrets(["apply", "--config", dir, "--state-dir", state])).exitCode).toBe(0);
    // A config dir in git: a manual apply records the commit too.
    expect(ledger(state).find((e) => e.action === "create")?.revision).toBe(sha);
    writeFileSync(path.join(dir, "cells.d/c.yaml"), human("c", "  credentials:\n    TOKEN: {file: token2}"));
    const md = await withSecrets(["plan", "--format", "markdown", "--config", dir, "--state-dir", state]);
    expect(md.stdout).toContain("| `c` | update |  | credentials changed (redacted) |");
    expect(md.stdout).toMatch(/^### Lazarus plan for `[0-9a-f]{12}`/);
    expect(md.stdout).not.toMatch(/\x1b\[/);
    const json = await withSecrets(["plan", "--json", "--config", dir, "--state-dir", state]);
    const saved = path.join(state, "..", `${path.basename(state)}-plan.json`);
    await withSecrets(["plan", "--out", saved, "--config", dir, "--state-dir", state]);
    for (const text of [md.stdout, md.stderr, json.stdout, readFileSync(saved, "utf8")])
      expect(text).not.toContain(SECRET);
    rmSync(saved);
  });

  it("diffs the desired state of two commits field by field, with terraform's exit codes", async () => {
    const { dir, commit } = await repo();
    const base = await commit("one", files(["a", "b"]));
    const head = await commit("two", {
      "cells.d/a.yaml": human("a").replace("owner: human:alexander", "owner: human:ezra"),
      "cells.d/b.yaml": null,
      "cells.d/c.yaml": human("c"),
    });
    const r = await lazarus(["diff", "--repo", dir, "--base", base, "--head", head]);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toContain("~ cell a (changed)\n    owner: human:alexander → human:ezra");
    expect(r.stdout).toContain("- cell b (removed)");
    expect(r.stdout).toContain("+ cell c (added)");
    expect((await lazarus(["diff", "--repo", dir, "--base", head, "--head", "main"])).exitCode).toBe(0);
    expect((await lazarus(["diff", "--repo", dir, "--base", "nope", "--head", "main"])).exitCode).toBe(1);
  });
});

describe("lazarus watch --repo", () => {
  it("follows a bare repo: applies a commit within one interval, rejects a broken one whole, holds a mass close until approved", async () => {
    const bare = tempDir("lazarus-bare-");
    const state = tempDir("lazarus-state-");
    dirs.push(bare, state);
    await execa("git", ["init", "-q", "--bare", "-b", "main", bare]);
    const { commit, g } = await repo();
    await commit("first", files(["first"]));
    await g("push", "-q", bare, "main");
    const daemon = startWatch(["--repo", bare, "--interval", "1s", "--state-dir", state, "--tick", "* * * * * *"]);
    try {
      await waitFor(() => existsSync(path.join(state, "cells", "first")), 15_000);
      const sha = await commit("second", files(["second"]));
      await g("push", "-q", bare, "main");
      const pushed = Date.now();
      await waitFor(() => existsSync(path.join(state, "cells", "second", ".lazarus", "cell.json")), 15_000);
      expect(Date.now() - pushed).toBeLessThan(5000); // one interval (1s ± jitter) plus the work
      await waitFor(() => readRecord(path.join(state, "cells", "second")).state === "active");
      expect(readRecord(path.join(state, "cells", "second")).lastAppliedRevision).toBe(sha);
      expect(daemon.logs).toContain('"msg":"new revision in force"');

      // A broken commit is rejected whole; the revision in force stays.
      await commit("broken", { "cells.d/third.yaml": "kind: [" });
      await g("push", "-q", bare, "main");
      await waitFor(
        () => daemon.logs.includes("revision-rejected") || /cells\.d\/third\.yaml:\d+:\d+: error/.test(daemon.logs),
        15_000,
      );
      const st = JSON.parse((await lazarus(["status", "--json", "--state-dir", state])).stdout);
      expect(st.revision).toMatchObject({ inForce: sha, outcome: "rejected" });

      // A commit closing every cell is held until an operator approves it.
      const all = await commit("remove all", {
        "cells.d/third.yaml": null,
        "cells.d/first.yaml": null,
        "cells.d/second.yaml": null,
      });
      await g("push", "-q", bare, "main");
      await waitFor(() => daemon.logs.includes("held by the deletion budget"), 15_000);
      expect(existsSync(path.join(state, "cells", "first"))).toBe(true);
      const approve = await lazarus(["apply", "--allow-mass-close", "--state-dir", state]);
      expect(approve.stdout).toContain(
        `Approved ${all.slice(0, 12)} (2 closes); the running daemon (pid ${daemon.pid})`,
      );
      await waitFor(
        () => !existsSync(path.join(state, "cells", "first")) && !existsSync(path.join(state, "cells", "second")),
        15_000,
      );
      expect(JSON.parse((await lazarus(["status", "--json", "--state-dir", state])).stdout).revision.inForce).toBe(all);
    } finally {
      daemon.child.kill("SIGTERM");
      await daemon.child;
    }
  });
});
