// memberGit on its own (without the refusal of risky repositories in front of it): the command-line
// overrides keep fsmonitor and hooks from running, and whatever git still runs (a clean filter)
// gets none of Lazarus's environment.
import { chmodSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { STATUS_ARGS, gitRefusal, memberGit } from "../../src/apply/member-git.js";
import { tempDir } from "../helpers.js";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

async function repo() {
  const project = tempDir("lazarus-project-");
  const outside = tempDir("lazarus-outside-");
  dirs.push(project, outside);
  const git = (...args: string[]) =>
    execa("git", ["-C", project, ...args], { env: { GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null" } });
  await git("init", "-q");
  writeFileSync(path.join(project, "a.txt"), "one\n");
  await git("add", "a.txt");
  await git("-c", "user.name=m", "-c", "user.email=m@example.com", "commit", "-qm", "first");
  const hook = path.join(outside, "hook.sh");
  writeFileSync(hook, `#!/bin/sh\nenv > "${outside}/ran-$$"\ncat\n`);
  chmodSync(hook, 0o755);
  const ran = () => readdirSync(outside).filter((f) => f.startsWith("ran-"));
  return { project, outside, git, hook, ran };
}

describe("memberGit", () => {
  it("runs neither core.fsmonitor nor hooks, even when asked to", async () => {
    const { project, git, hook, ran } = await repo();
    await git("config", "core.fsmonitor", hook);
    for (const h of ["post-index-change", "reference-transaction"]) {
      writeFileSync(path.join(project, ".git", "hooks", h), readFileSync(hook));
      chmodSync(path.join(project, ".git", "hooks", h), 0o755);
    }
    writeFileSync(path.join(project, "a.txt"), "two\n");
    expect(await memberGit(project, STATUS_ARGS)).toContain("a.txt");
    expect(ran()).toEqual([]);
    expect(await gitRefusal(project)).toContain("fsmonitor");
  });

  it("gives a program git still runs none of Lazarus's environment", async () => {
    const { project, outside, git, hook, ran } = await repo();
    writeFileSync(path.join(project, ".gitattributes"), "* filter=x\n");
    await git("config", "filter.x.clean", hook);
    writeFileSync(path.join(project, "a.txt"), "two\n");
    await memberGit(project, STATUS_ARGS, {
      ...process.env,
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      LAZARUS_TEST_SECRET: "s3cret",
    });
    expect(ran().length).toBeGreaterThan(0); // filters are why risky repositories are refused (gitRefusal)
    for (const f of ran()) {
      const env = readFileSync(path.join(outside, f), "utf8");
      expect(env).not.toContain("s3cret");
      expect(env).toContain("HOME=/nonexistent");
      expect(env).not.toMatch(/^(USER|LOGNAME|SSH_AUTH_SOCK)=/m);
    }
    expect(await gitRefusal(project)).toContain("filter");
  });
});
