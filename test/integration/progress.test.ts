// Progress of apply and checkpoint: a status line redrawn in place on a terminal (`script` gives
// the CLI a real pseudo-terminal; util-linux), nothing of it — no control character at all — when
// output is piped, and none with --no-progress.
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, cellYaml, cleanup, configDir, lazarus, tempDir } from "../helpers.js";

const cells = Object.fromEntries(
  ["p1", "p2", "p3"].map((n) => [
    `cells.d/${n}.yaml`,
    cellYaml({ name: n, members: [{ identity: "human:h", role: "director" }] }),
  ]),
);
const config = configDir(cells);
const states = [tempDir("lazarus-progress-"), tempDir("lazarus-progress-"), tempDir("lazarus-progress-")];
afterAll(() => cleanup(config, ...states));

const onTty = (args: string, env: Record<string, string> = {}) =>
  execa("script", ["-qfec", `node ${CLI} ${args}`, "/dev/null"], {
    reject: false,
    env: { TERM: "xterm", PATH: process.env.PATH ?? "", ...env },
    extendEnv: false,
  });
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/; // anything but \t and \n

describe("progress", () => {
  it("is drawn in place on a terminal: cells and actions done of total, elapsed, the action running", async () => {
    const r = await onTty(`apply --yes --config ${config} --state-dir ${states[0]}`, { NO_COLOR: "1" });
    expect(r.exitCode, r.stdout).toBe(0);
    expect(r.stdout).toContain("\r\x1b[2K"); // redrawn in place
    expect(r.stdout).toMatch(/cells 0\/3 {2}actions 0\/3 {2}\d+:\d{2}/);
    expect(r.stdout).toMatch(/create p[123]/);
    expect(r.stdout).toMatch(/cells 3\/3 {2}actions 3\/3/);
    expect(r.stdout).toContain("Apply complete: 3 applied");
    // the result lines are never torn by the status line: each starts a line of its own
    for (const n of ["p1", "p2", "p3"])
      expect(r.stdout).toMatch(new RegExp(`(^|\\n|\\x1b\\[2K)  \\+ create +${n} .*done`));
    const cp = await onTty(`checkpoint p1 --config ${config} --state-dir ${states[0]}`, { NO_COLOR: "1" });
    expect(cp.exitCode, cp.stdout).toBe(0);
    expect(cp.stdout).toMatch(/checkpointing p1/);
    expect(cp.stdout).toContain("Checkpoint of p1:");
  });

  it("is not drawn with --no-progress or LAZARUS_NO_PROGRESS=1, even on a terminal", async () => {
    const r = await onTty(`apply --yes --no-progress --config ${config} --state-dir ${states[1]}`, { NO_COLOR: "1" });
    expect(r.exitCode, r.stdout).toBe(0);
    expect(r.stdout).toContain("Apply complete: 3 applied");
    expect(r.stdout).not.toContain("\x1b");
    expect(r.stdout).not.toMatch(/cells \d+\/3/);
    const cp = await onTty(`checkpoint p1 --config ${config} --state-dir ${states[1]}`, {
      NO_COLOR: "1",
      LAZARUS_NO_PROGRESS: "1",
    });
    expect(cp.stdout).not.toContain("checkpointing");
    expect(cp.stdout).not.toContain("\x1b");
  });

  it("is drawn for sync on a terminal, and never when sync is piped", async () => {
    const repo = configDir(cells);
    states.push(repo);
    const gitEnv = {
      GIT_AUTHOR_NAME: "t",
      GIT_AUTHOR_EMAIL: "t@t",
      GIT_COMMITTER_NAME: "t",
      GIT_COMMITTER_EMAIL: "t@t",
    };
    for (const args of [
      ["init", "-q", "-b", "main"],
      ["add", "."],
      ["commit", "-qm", "three cells"],
    ])
      await execa("git", ["-C", repo, ...args], { env: gitEnv });
    const s1 = tempDir("lazarus-progress-");
    const s2 = tempDir("lazarus-progress-");
    states.push(s1, s2);
    const r = await onTty(`sync --repo ${repo} --state-dir ${s1}`, {
      NO_COLOR: "1",
      HOME: process.env.HOME ?? "/root",
    });
    expect(r.exitCode, r.stdout).toBe(0);
    expect(r.stdout).toContain("\r\x1b[2K");
    expect(r.stdout).toMatch(/cells 3\/3 {2}actions 3\/3/);
    expect(r.stdout).toMatch(/: applied: 3 action\(s\) applied/);
    const piped = await lazarus(["sync", "--repo", repo, "--state-dir", s2]);
    expect(piped.exitCode, piped.stderr).toBe(0);
    expect(piped.stdout + piped.stderr).not.toMatch(CONTROL);
  });

  it("leaves piped output line-oriented: no escape sequence, no carriage return", async () => {
    const r = await lazarus(["apply", "--yes", "--config", config, "--state-dir", states[2] as string], {
      env: { TERM: "xterm" },
    });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain("Apply complete: 3 applied");
    expect(r.stdout + r.stderr).not.toMatch(CONTROL);
    const cp = await lazarus(["checkpoint", "p2", "--config", config, "--state-dir", states[2] as string]);
    expect(cp.exitCode, cp.stderr).toBe(0);
    expect(cp.stdout + cp.stderr).not.toMatch(CONTROL);
  });
});
