// memberGit on its own (without the refusal of risky repositories in front of it): the command-line
// overrides keep fsmonitor and hooks from running, and whatever git still runs (a clean filter)
// gets none of Lazarus's environment.
import { appendFileSync, chmodSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
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

describe("gitRefusal", () => {
  // Each key that can make git run a program or connect elsewhere than asked, set as a member would
  // (git config in project/): refused, and the refusal names the key (a subsection as *).
  const cases: [string, string, string][] = [
    ["credential.helper", "!touch /tmp/x", "credential.helper"],
    ["credential.https://forge.test.helper", "store", "credential.*.helper"],
    ["url.https://evil.test/.insteadOf", "https://forge.test/", "url.*.insteadof"],
    ["url.https://evil.test/.pushInsteadOf", "https://forge.test/", "url.*.pushinsteadof"],
    ["core.sshCommand", "touch /tmp/x", "core.sshcommand"],
    ["core.fsmonitor", "touch /tmp/x", "core.fsmonitor"],
    ["core.hooksPath", "/tmp", "core.hookspath"],
    ["diff.x.textconv", "touch /tmp/x", "diff.*.textconv"],
    ["diff.external", "touch /tmp/x", "diff.external"],
    ["merge.x.driver", "touch /tmp/x", "merge.*.driver"],
    ["filter.x.clean", "touch /tmp/x", "filter.*.clean"],
    ["protocol.ext.allow", "always", "protocol.*.allow"],
    ["protocol.allow", "always", "protocol.allow"],
    ["remote.origin.uploadpack", "touch /tmp/x", "remote.*.uploadpack"],
    ["remote.origin.receivepack", "touch /tmp/x", "remote.*.receivepack"],
    ["include.path", "/etc/gitconfig", "include.path"],
  ];
  it.each(cases)("refuses a repository that sets %s, and names it", async (key, value, named) => {
    const { project, git } = await repo();
    expect(await gitRefusal(project)).toBeUndefined();
    await git("config", key, value);
    const why = await gitRefusal(project);
    expect(why).toContain(`project/.git/config sets ${named},`);
    expect(why).not.toContain("evil.test"); // a subsection (a URL, maybe a token in it) is not shown
  });

  it("lets a word be in a subsection or a value: a branch named after a risky key is no risk", async () => {
    const { project, git } = await repo();
    await git("config", "branch.credential-filter-proxy.merge", "refs/heads/include-command");
    await git("config", "user.name", "the editor's program");
    expect(await gitRefusal(project)).toBeUndefined();
  });

  it("names the word when git cannot parse the config at all", async () => {
    const { project } = await repo();
    appendFileSync(path.join(project, ".git", "config"), "[filter\n");
    expect(await gitRefusal(project)).toContain('project/.git/config mentions "filter"');
  });
});
