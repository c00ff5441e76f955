// What counts as progress: only what Lazarus sees in project/ (a new commit: HEAD or any ref moved)
// and under shared/artifacts/ (a new or changed file), stamped with the time Lazarus first saw it.
// Files elsewhere, a commit in a member's home, a touched mtime, a linked or huge .git: no evidence,
// and never a hang. A kill -9 of Lazarus mid-slice keeps the clock.
import { execFileSync } from "node:child_process";
import { mkdirSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cleanup, startWatching, stopWatches, tempDir } from "../helpers.js";
import { git, idle, progressCell, sleep, type ProgressCell } from "./helpers.js";

const made: string[] = [];
afterAll(async () => {
  await stopWatches();
  cleanup(...made);
});
const cell = (name: string, progress = "  progress: {slice: 3s, onStall: notify}"): ProgressCell => {
  const c = progressCell(name, progress, [idle()]);
  made.push(c.state, c.config);
  return c;
};
const progressActions = async (c: ProgressCell, now?: number) =>
  (await c.plan(now)).actions.filter((a) => a.action === "progress");

describe("evidence", () => {
  it("files outside project/ and shared/artifacts/, uncommitted files and a commit in a home are not progress", async () => {
    const c = cell("elsewhere");
    expect((await c.apply()).exitCode).toBe(0);
    writeFileSync(path.join(c.dir, "shared", "notes.md"), "notes\n");
    writeFileSync(path.join(c.dir, "project", "draft.txt"), "not committed\n");
    const home = path.join(c.dir, "home", "idle");
    writeFileSync(path.join(home, "work.txt"), "mine\n");
    await git(home, ["init", "-q", "."]);
    await git(home, ["add", "work.txt"]);
    await git(home, ["commit", "-q", "-m", "in my home"]);
    expect(await progressActions(c)).toEqual([]);
    await sleep(3_200);
    const p = await c.plan();
    expect(p.actions.map((a) => a.action)).toEqual(["stall"]);
    expect(p.actions[0]?.reason).toContain("no evidence yet");
  }, 60_000);

  it("a new commit counts when Lazarus first sees it, whatever date it carries (back-dated to 2001)", async () => {
    const c = cell("backdated");
    expect((await c.apply()).exitCode).toBe(0);
    const project = path.join(c.dir, "project");
    await git(project, ["init", "-q", "."]);
    writeFileSync(path.join(project, "a.txt"), "a\n");
    await git(project, ["add", "a.txt"]);
    const old = { GIT_AUTHOR_DATE: "2001-01-01T00:00:00Z", GIT_COMMITTER_DATE: "2001-01-01T00:00:00Z" };
    await git(project, ["commit", "-q", "-m", "old date"], old);
    const found = await progressActions(c);
    expect(found).toHaveLength(1);
    expect(found[0]?.evidence?.[0]).toMatch(/^commit [0-9a-f]{12} on HEAD/);
    const before = Date.now();
    expect((await c.apply()).exitCode).toBe(0);
    const s = c.progress();
    expect(Date.parse(s.lastEvidenceAt as string)).toBeGreaterThanOrEqual(before - 1_000); // Lazarus's time, not 2001
    expect(s.slices).toBe(1);
    expect(await progressActions(c)).toEqual([]); // recorded: the same commit is not seen again
    // Another back-dated commit on a new branch: a ref moved, new evidence again.
    await git(project, ["checkout", "-q", "-b", "side"]);
    writeFileSync(path.join(project, "b.txt"), "b\n");
    await git(project, ["add", "b.txt"]);
    await git(project, ["commit", "-q", "-m", "older"], { ...old, GIT_COMMITTER_DATE: "1990-01-01T00:00:00Z" });
    expect((await progressActions(c))[0]?.evidence?.join(" ")).toContain("refs/heads/side");
  }, 60_000);

  it("an artifact new or changed counts; one whose mtime is touched back without a change does not", async () => {
    const c = cell("artifacts");
    expect((await c.apply()).exitCode).toBe(0);
    const art = path.join(c.dir, "shared", "artifacts");
    mkdirSync(path.join(art, "reports"), { recursive: true });
    const file = path.join(art, "reports", "r.txt");
    writeFileSync(file, "first\n");
    expect((await progressActions(c))[0]?.evidence).toEqual(["shared/artifacts/reports/r.txt new"]);
    expect((await c.apply()).exitCode).toBe(0);
    expect(await progressActions(c)).toEqual([]);
    utimesSync(file, new Date("2001-01-01T00:00:00Z"), new Date("2001-01-01T00:00:00Z"));
    expect(await progressActions(c)).toEqual([]);
    writeFileSync(file, "other\n"); // same size, new content
    utimesSync(file, new Date("2001-01-01T00:00:00Z"), new Date("2001-01-01T00:00:00Z"));
    expect((await progressActions(c))[0]?.evidence).toEqual(["shared/artifacts/reports/r.txt changed"]);
    // a link under artifacts is not an artifact
    symlinkSync("/etc/hostname", path.join(art, "link"));
    expect((await progressActions(c))[0]?.evidence).toEqual(["shared/artifacts/reports/r.txt changed"]);
  }, 60_000);

  it("a project/.git linked out of the cell is no evidence, however its repository moves", async () => {
    const c = cell("linked-git");
    expect((await c.apply()).exitCode).toBe(0);
    const outside = tempDir("lazarus-outside-repo-");
    made.push(outside);
    await git(outside, ["init", "-q", "."]);
    await git(outside, ["commit", "-q", "--allow-empty", "-m", "one"]);
    symlinkSync(path.join(outside, ".git"), path.join(c.dir, "project", ".git"));
    await git(outside, ["commit", "-q", "--allow-empty", "-m", "two"]);
    const p = await c.plan();
    expect(p.actions.filter((a) => a.action === "progress")).toEqual([]);
    expect(p.diagnostics.map((d) => d.message).join("\n")).toContain("project/.git is a symbolic link");
    const st = (await c.status()).cells[0] as { progress: { notes: string[] } };
    expect(st.progress.notes.join("\n")).toContain("symbolic link");
  }, 60_000);

  it("a huge project/.git (100,000 refs) or a FIFO for its packed-refs never hangs plan or status", async () => {
    const c = cell("huge-git");
    expect((await c.apply()).exitCode).toBe(0);
    const project = path.join(c.dir, "project");
    await git(project, ["init", "-q", "."]);
    await git(project, ["commit", "-q", "--allow-empty", "-m", "one"]);
    const head = execFileSync("git", ["rev-parse", "HEAD"], { cwd: project, encoding: "utf8" }).trim();
    const lines = ["# pack-refs with: peeled fully-peeled sorted "];
    for (let i = 0; i < 100_000; i++) lines.push(`${head} refs/tags/t${String(i).padStart(6, "0")}`);
    writeFileSync(path.join(project, ".git", "packed-refs"), `${lines.join("\n")}\n`);
    let t = Date.now();
    const p = await c.run(["plan", "--json"], { timeoutMs: 20_000 });
    expect(p.signal).toBeUndefined();
    expect(Date.now() - t).toBeLessThan(20_000);
    const plan = JSON.parse(p.stdout) as { actions: { action: string }[]; diagnostics: { message: string }[] };
    expect(plan.actions.filter((a) => a.action === "progress")).toEqual([]); // too many refs to judge: no evidence
    expect(plan.diagnostics.map((d) => d.message).join("\n")).toContain("more than 1048576 bytes");
    execFileSync("rm", [path.join(project, ".git", "packed-refs")]);
    execFileSync("mkfifo", [path.join(project, ".git", "packed-refs")]);
    t = Date.now();
    const s = await c.run(["status"], { timeoutMs: 20_000 });
    expect(s.signal).toBeUndefined();
    expect(s.exitCode).toBe(0);
    expect(Date.now() - t).toBeLessThan(20_000);
    expect(s.stdout).toContain("project/.git");
  }, 60_000);

  it("a kill -9 of Lazarus mid-slice keeps the clock: the stall comes when the recorded slice ends", async () => {
    const c = cell("killed", "  progress: {slice: 20s, onStall: notify}");
    expect((await c.apply()).exitCode).toBe(0);
    const since = c.progress().since;
    const w = await startWatching(["--config", c.config, "--state-dir", c.state]);
    await sleep(1_000);
    w.child.kill("SIGKILL");
    await w.child;
    expect(c.progress().since).toBe(since); // neither the watch nor its death restarted the clock
    const r = await c.apply(); // a new Lazarus, mid-slice: nothing to do yet
    expect(r.stdout).not.toMatch(/^\s*! stall/m);
    expect(r.stdout).toContain("stalls at");
    const p = await c.plan(Date.parse(since) + 21_000);
    expect(p.actions.map((a) => a.action)).toEqual(["stall"]);
    expect(p.actions[0]?.reason).toContain("no progress for 21s");
  }, 60_000);
});
