// A member configures git in its project/ to run its own programs when Lazarus writes the close
// log (fsmonitor, hooks, a clean filter through .gitattributes). Each test fails if any runs.
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { cellYaml, cleanup, configDir, lazarus, tempDir } from "../helpers.js";
import { cleanupCgroups, sandboxEnv, skipReason } from "../sandbox/helpers.js";

const dirs: string[] = [];
const sbx = sandboxEnv("integration/attack-git");
afterAll(async () => {
  cleanup(...dirs);
  await cleanupCgroups(sbx.LAZARUS_CGROUP_ROOT as string);
});
const start = Date.now();
// near the clock: git log --since the cell's creation
const T = (m: number) => new Date(start + m * 60_000).toISOString();
const SECRET = "lazarus-own-secret-0451";

async function cellWithRepo(name: string, backend: string) {
  const state = tempDir("lazarus-state-");
  const config = configDir({
    [`cells.d/${name}.yaml`]:
      backend === "sandbox"
        ? cellYaml({
            name,
            extra: "  backend: sandbox",
            members: [{ identity: "agent:a", command: ["sleep", "1000"] }],
          })
        : cellYaml({ name }),
  });
  const outside = tempDir("lazarus-outside-");
  dirs.push(state, config, outside);
  const env = { LAZARUS_TEST_SECRET: SECRET, ...(backend === "sandbox" ? sbx : {}) };
  const run = (...args: string[]) =>
    lazarus([...args, "--config", config, "--state-dir", state], { env, timeoutMs: 30_000 });
  expect((await run("apply", "--now", T(0))).exitCode).toBe(0);
  const project = path.join(state, "cells", name, "project");
  const git = (...args: string[]) =>
    execa("git", ["-c", "safe.directory=*", "-C", project, ...args], {
      env: { GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null" },
    });
  await git("init", "-q");
  await git("config", "user.email", "m@example.com");
  await git("config", "user.name", "member");
  writeFileSync(path.join(project, "a.txt"), "one\n");
  await git("add", "a.txt");
  await git("commit", "-qm", "first");
  // A program of the member's: it leaves a marker with the environment it ran with.
  const hook = path.join(project, "hook.sh");
  writeFileSync(hook, `#!/bin/sh\nenv > "${outside}/ran-$$"\ncat\n`);
  chmodSync(hook, 0o755);
  const close = async () => {
    writeFileSync(path.join(project, "a.txt"), "two\n"); // same size, new content: status must look inside
    const r = await run("apply", "--now", T(5 * 60));
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    return JSON.parse(readFileSync(path.join(state, "graveyard", name, ".lazarus", "close.log"), "utf8"))
      .projectChanges as { source: string; files: string[]; gitSkipped?: string };
  };
  const ran = async () => (await execa("ls", [outside])).stdout.split("\n").filter(Boolean);
  return { project, git, hook, close, ran, outside };
}

describe.each([["process"], ["sandbox"]])("git in a member's project/ on close (backend %s)", (backend) => {
  if (backend === "sandbox" && skipReason) return void it.skip(`sandbox: ${skipReason}`, () => {});
  it("never runs the member's fsmonitor or hooks", async () => {
    const { git, hook, project, close, ran } = await cellWithRepo("fsm", backend);
    await git("config", "core.fsmonitor", hook);
    for (const h of ["post-index-change", "pre-commit", "post-checkout"])
      writeFileSync(path.join(project, ".git", "hooks", h), readFileSync(hook));
    for (const h of ["post-index-change", "pre-commit", "post-checkout"])
      chmodSync(path.join(project, ".git", "hooks", h), 0o755);
    const changes = await close();
    expect(await ran()).toEqual([]);
    expect(changes.files).toContain("a.txt");
    expect(changes.gitSkipped).toContain("fsmonitor");
  });

  it("never runs a clean filter the member names in .gitattributes", async () => {
    const { git, hook, project, close, ran } = await cellWithRepo("flt", backend);
    writeFileSync(path.join(project, ".gitattributes"), "* filter=x\n");
    await git("config", "filter.x.clean", hook);
    await git("config", "filter.x.required", "true");
    const changes = await close();
    expect(await ran()).toEqual([]);
    expect(changes.files).toContain("a.txt");
  });

  it("never runs a program configured in a file the repository includes", async () => {
    const { git, hook, project, close, ran } = await cellWithRepo("inc", backend);
    const elsewhere = tempDir("lazarus-include-");
    dirs.push(elsewhere);
    writeFileSync(path.join(elsewhere, "inc.cfg"), `[core]\n\tfsmonitor = ${hook}\n`);
    await git("config", "include.path", path.join(elsewhere, "inc.cfg"));
    writeFileSync(path.join(project, "b.txt"), "new\n");
    const changes = await close();
    expect(await ran()).toEqual([]);
    expect(changes.files).toEqual(expect.arrayContaining(["a.txt", "b.txt"]));
  });

  it("still lists a plain repository's changes and commits with git", async () => {
    const { git, project, close, ran } = await cellWithRepo("plain", backend);
    writeFileSync(path.join(project, "b.txt"), "b\n");
    await git("add", "b.txt");
    await git("commit", "-qm", "second");
    const changes = await close();
    expect(await ran()).toEqual([]);
    expect(changes).toMatchObject({
      source: "git",
      files: ["a.txt", "b.txt", "hook.sh"],
      commits: [expect.stringMatching(/ first$/), expect.stringMatching(/ second$/)].reverse(),
    });
  });
});
