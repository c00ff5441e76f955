// Pushing a cell's branch (spec.push) end to end: the real CLI, a process cell whose member
// commits on a branch in project/, and a real bare repository served over smart HTTP by
// `git http-backend` behind a node server on 127.0.0.1 that requires the forge token (401
// without it; test/git-http.ts). The comments go to the stand-in forge (no Gitea or GitHub can
// run here; test/forge/stand-in.ts). Covered: pushes at checkpoint and at close, the SHA in the
// bare repository and in the ledger, a diverged remote (never forced: an event), a wrong token (an
// event, the cell healthy), kill -9 at each journal point, a hostile project/.git, no push when
// none is declared, and what plan and publish --dry-run say.
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import type http from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import {
  cellYaml,
  cleanup,
  configDir,
  lazarus,
  readRecord,
  tempDir,
  waitFor,
  ROOT,
  type CliResult,
} from "../helpers.js";
import { StandIn } from "./stand-in.js";
import { gitHttpServer, type GitRequest } from "../git-http.js";

const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();
const TOKEN = "s3cret-push-token-9876543210";
const BRANCH = "feature/login";
const COMMITTER = path.join(ROOT, "test", "fixtures", "branch-committer.sh");

let dirs: string[] = [];
let servers: http.Server[] = [];
let forges: StandIn[] = [];
afterEach(async () => {
  for (const f of forges) await f.stop();
  for (const s of servers) await new Promise((r) => s.close(r));
  cleanup(...dirs);
  dirs = [];
  servers = [];
  forges = [];
});

const git = (cwd: string, ...args: string[]): string =>
  execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@test", "-c", "core.hooksPath=/dev/null", ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: cwd, GIT_CONFIG_NOSYSTEM: "1" },
    encoding: "utf8",
  }).trim();

interface Setup {
  push?: boolean;
  token?: string; // in the token file (default: the right one)
  script?: number[];
}

async function setup(o: Setup = {}) {
  const forge = new StandIn("gitea", TOKEN);
  await forge.start();
  forges.push(forge);
  const repos = tempDir("lazarus-repos-");
  mkdirSync(path.join(repos, "Org"));
  git(repos, "init", "-q", "--bare", path.join(repos, "Org", "repo.git"));
  const server = await gitHttpServer(repos, { token: TOKEN, ...(o.script ? { script: o.script } : {}) });
  servers.push(server.server);
  const yaml = (state?: "closed") =>
    cellYaml({
      name: "c",
      members: [{ identity: "agent:allegro", command: ["sh", COMMITTER], env: { BRANCH } }],
      ...(o.push === false ? {} : { extra: `  push: {branch: ${BRANCH}}` }),
      ...(state ? { state } : {}),
    });
  const config = configDir({ "cells.d/c.yaml": yaml() });
  const state = tempDir("lazarus-state-");
  const secrets = tempDir("lazarus-secrets-");
  dirs.push(config, state, secrets, repos);
  mkdirSync(path.join(secrets, "forge"));
  writeFileSync(path.join(secrets, "forge", "token"), `${o.token ?? TOKEN}\n`);
  const table = `${secrets}-forges.yaml`;
  writeFileSync(
    table,
    `forges:\n  - match: "Org/"\n    kind: gitea\n    url: ${forge.url}\n` +
      `    gitUrl: ${server.url}\n    tokenFile: forge/token\n`,
  );
  dirs.push(table);
  const env = { LAZARUS_FORGES: table, LAZARUS_SECRETS_DIR: secrets };
  const outputs: CliResult[] = [];
  const cli = async (args: string[], extra: Record<string, string> = {}) => {
    const r = await lazarus([...args, "-s", state], { env: { ...env, ...extra }, timeoutMs: 90_000 });
    outputs.push(r);
    return r;
  };
  const run = (m: number, extra: Record<string, string> = {}) => cli(["apply", "-c", config, "--now", T(m)], extra);
  const checkpoint = (m: number) => cli(["checkpoint", "c", "--now", T(m)]);
  const close = () => writeFileSync(path.join(config, "cells.d", "c.yaml"), yaml("closed"));
  const project = () => path.join(state, "cells", "c", "project");
  const bare = path.join(repos, "Org", "repo.git");
  const remoteTip = (): string | undefined => {
    try {
      return git(bare, "rev-parse", "--verify", "--quiet", `refs/heads/${BRANCH}`);
    } catch {
      return undefined;
    }
  };
  const ledger = () =>
    readFileSync(path.join(state, "ledger.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { action: string; cell: string; reason: string; details?: Record<string, unknown> });
  const memberCommitted = () =>
    waitFor(() => existsSync(path.join(project(), ".git", "refs", "heads", BRANCH)), 20_000);
  return {
    forge,
    server,
    config,
    state,
    secrets,
    repos,
    bare,
    env,
    outputs,
    cli,
    run,
    checkpoint,
    close,
    project,
    remoteTip,
    ledger,
    memberCommitted,
  };
}
type S = Awaited<ReturnType<typeof setup>>;

// Everything Lazarus wrote or printed: the token is in none of it.
function expectNoToken(s: S): void {
  const files: string[] = [path.join(s.state, "ledger.jsonl")];
  const outbox = path.join(s.state, "outbox");
  for (const n of existsSync(outbox) ? readdirSync(outbox) : [])
    if (n.endsWith(".json")) files.push(path.join(outbox, n));
  for (const f of files) expect(readFileSync(f, "utf8"), f).not.toContain(TOKEN);
  for (const r of s.outputs) expect(r.stdout + r.stderr).not.toContain(TOKEN);
  for (const c of s.forge.all()) expect(c.body).not.toContain(TOKEN);
}

const pushes = (s: S) => s.ledger().filter((e) => e.action === "push");

describe("pushing the cell's branch (git http-backend on 127.0.0.1)", () => {
  it("pushes at each checkpoint and at close, records the SHA, and says so in the close comment", async () => {
    const s = await setup();
    expect((await s.run(0)).exitCode).toBe(0);
    await s.memberCommitted();
    const plan = await s.cli(["plan", "-c", s.config, "--now", T(0)]);
    expect(plan.stdout).toContain(
      `c: pushes ${BRANCH} to ${s.server.url}/Org/repo.git at each checkpoint and at close`,
    );
    expect(s.remoteTip()).toBeUndefined(); // no checkpoint yet: nothing pushed
    const dry0 = await s.cli(["publish", "--dry-run", "c"]);
    expect(dry0.stdout).toContain("would push feature/login to");
    expect(dry0.stdout).toContain("at its first checkpoint");

    expect((await s.checkpoint(1)).exitCode).toBe(0);
    expect((await s.run(1)).exitCode).toBe(0);
    const first = git(s.project(), "rev-parse", BRANCH);
    expect(s.remoteTip()).toBe(first);
    expect(pushes(s)).toHaveLength(1);
    expect(pushes(s)[0]!.details).toMatchObject({ branch: BRANCH, sha: first, url: `${s.server.url}/Org/repo.git` });
    expect(s.server.seen.some((r) => !r.authorized)).toBe(false);

    // Another apply without a new checkpoint pushes nothing more.
    expect((await s.run(2)).exitCode).toBe(0);
    expect(pushes(s)).toHaveLength(1);

    git(s.project(), "commit", "-q", "--allow-empty", "-m", "second");
    const second = git(s.project(), "rev-parse", BRANCH);
    expect((await s.checkpoint(3)).exitCode).toBe(0);
    expect((await s.run(3)).exitCode).toBe(0);
    expect(s.remoteTip()).toBe(second);

    git(s.project(), "commit", "-q", "--allow-empty", "-m", "third");
    const third = git(s.project(), "rev-parse", BRANCH);
    s.close();
    expect((await s.run(4)).exitCode).toBe(0);
    expect(s.remoteTip()).toBe(third);
    const last = pushes(s).at(-1)!;
    expect(last.details).toMatchObject({ sha: third, trigger: "close" });
    const close = s.forge.all().find((c) => c.body.includes("kind=close"));
    expect(close?.body).toContain(
      `- pushed: \`${BRANCH}\` at \`${third.slice(0, 12)}\` to ${s.server.url}/Org/repo.git`,
    );
    const dry = await s.cli(["publish", "--dry-run", "c"]);
    expect(dry.stdout).toContain(`pushed ${BRANCH} to ${s.server.url}/Org/repo.git at ${third.slice(0, 12)} at close`);
    const status = JSON.parse((await s.cli(["status", "c", "--json"])).stdout) as {
      cells: { state: string; push?: { sha: string; status: string; trigger: string } }[];
    };
    expect(status.cells.find((c) => c.state === "closed")?.push).toMatchObject({
      sha: third,
      status: "done",
      trigger: "close",
    });
    expectNoToken(s);
  }, 300_000);

  it("never forces over a diverged remote: a push-rejected event, the remote kept, the cell healthy", async () => {
    const s = await setup();
    // Someone else pushed the branch first, with history of their own.
    const other = tempDir("lazarus-other-");
    dirs.push(other);
    git(other, "init", "-q", "-b", BRANCH);
    git(other, "commit", "-q", "--allow-empty", "-m", "someone else");
    git(other, "push", "-q", s.bare, BRANCH);
    const theirs = s.remoteTip();
    expect((await s.run(0)).exitCode).toBe(0);
    await s.memberCommitted();
    expect((await s.checkpoint(1)).exitCode).toBe(0);
    const r = await s.run(1);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain("1 rejected (not forced)");
    expect(s.remoteTip()).toBe(theirs);
    const rejected = s.ledger().filter((e) => e.action === "push-rejected");
    expect(rejected).toHaveLength(1);
    expect(rejected[0]!.reason).toMatch(/rejected \((non-fast-forward|fetch first)\); not forced/);
    expect(readRecord(path.join(s.state, "cells", "c")).state).toBe("active");
    // Not retried before the next checkpoint.
    expect((await s.run(2)).exitCode).toBe(0);
    expect(s.ledger().filter((e) => e.action === "push-rejected")).toHaveLength(1);
    const events = await s.cli(["events", "c"]);
    expect(events.stdout).toContain("push-rejected");
    const status = await s.cli(["status", "c"]);
    expect(status.stdout).toMatch(/push of feature\/login to \S+ for checkpoint \S+ rejected, not forced: /);
    const dry = await s.cli(["publish", "--dry-run", "c"]);
    expect(dry.stdout).toMatch(/# c push \(incarnation \w+\): rejected for checkpoint/);
    expectNoToken(s);
  }, 300_000);

  it("a wrong token is a push-failed event, not retried; the cell stays healthy", async () => {
    const s = await setup({ token: "not-the-token" });
    expect((await s.run(0)).exitCode).toBe(0);
    await s.memberCommitted();
    expect((await s.checkpoint(1)).exitCode).toBe(0);
    expect((await s.run(1)).exitCode).toBe(0);
    expect(s.remoteTip()).toBeUndefined();
    const failed = s.ledger().filter((e) => e.action === "push-failed");
    expect(failed).toHaveLength(1);
    expect(s.server.seen.some((r: GitRequest) => r.status === 401)).toBe(true);
    const seen = s.server.seen.length;
    expect((await s.run(2)).exitCode).toBe(0);
    expect(s.server.seen.length).toBe(seen); // not tried again
    expect(readRecord(path.join(s.state, "cells", "c")).state).toBe("active");
    // The operator fixes the token; lazarus publish tries once more.
    writeFileSync(path.join(s.secrets, "forge", "token"), TOKEN);
    expect((await s.cli(["publish"])).exitCode).toBe(0);
    expect(s.remoteTip()).toBe(git(s.project(), "rev-parse", BRANCH));
    expect(s.outputs.some((r) => (r.stdout + r.stderr).includes("not-the-token"))).toBe(false);
    expectNoToken(s);
  }, 300_000);

  it("retries a forge's 500 with backoff at the next run", async () => {
    const s = await setup({ script: [500] });
    expect((await s.run(0)).exitCode).toBe(0);
    await s.memberCommitted();
    expect((await s.checkpoint(1)).exitCode).toBe(0);
    const r = await s.run(1);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain("1 waiting");
    expect(s.remoteTip()).toBeUndefined();
    await new Promise((res) => setTimeout(res, 600)); // the first backoff is 0.5 s
    expect((await s.run(2)).exitCode).toBe(0);
    expect(s.remoteTip()).toBe(git(s.project(), "rev-parse", BRANCH));
    expect(pushes(s)).toHaveLength(1);
  }, 300_000);

  it.each(["push:queued", "push:before-push", "push:pushed", "push:saved"])(
    "a kill -9 at %s converges on the next run: pushed, recorded once",
    async (point) => {
      const s = await setup();
      expect((await s.run(0)).exitCode).toBe(0);
      await s.memberCommitted();
      expect((await s.checkpoint(1)).exitCode).toBe(0);
      const killed = await s.run(1, { LAZARUS_FAILPOINT: point });
      expect(killed.signal).toBe("SIGKILL");
      expect((await s.run(2)).exitCode).toBe(0);
      const tip = git(s.project(), "rev-parse", BRANCH);
      expect(s.remoteTip()).toBe(tip);
      expect(pushes(s)).toHaveLength(1);
      expect(pushes(s)[0]!.details).toMatchObject({ sha: tip });
      expect((await s.run(3)).exitCode).toBe(0);
      expect(pushes(s)).toHaveLength(1);
    },
    300_000,
  );

  it("a hostile project/.git cannot redirect the push, run a program, or reach a credential helper", async () => {
    const s = await setup();
    const evilRepos = tempDir("lazarus-evil-");
    dirs.push(evilRepos);
    mkdirSync(path.join(evilRepos, "Org"));
    git(evilRepos, "init", "-q", "--bare", path.join(evilRepos, "Org", "repo.git"));
    const evil = await gitHttpServer(evilRepos);
    servers.push(evil.server);
    expect((await s.run(0)).exitCode).toBe(0);
    await s.memberCommitted();
    const marker = path.join(s.repos, "ran");
    const gitDir = path.join(s.project(), ".git");
    // A member rewrites its repository's config (remotes and headers the push never reads) and hooks.
    writeFileSync(
      path.join(gitDir, "config"),
      readFileSync(path.join(gitDir, "config"), "utf8") +
        `[remote "origin"]\n\turl = ${evil.url}/Org/repo.git\n\tpushurl = ${evil.url}/Org/repo.git\n` +
        `[http]\n\textraHeader = X-Evil: 1\n`,
    );
    for (const hook of ["pre-push", "reference-transaction", "post-update", "pre-receive", "update"]) {
      writeFileSync(path.join(gitDir, "hooks", hook), `#!/bin/sh\ntouch ${marker}.${hook}\n`, { mode: 0o755 });
    }
    expect((await s.checkpoint(1)).exitCode).toBe(0);
    expect((await s.run(1)).exitCode).toBe(0);
    expect(s.remoteTip()).toBe(git(s.project(), "rev-parse", BRANCH));
    expect(evil.seen).toEqual([]);
    expect(readdirSync(s.repos).filter((n) => n.startsWith("ran"))).toEqual([]);

    // A config that names a program is not read at all: no push, an event that says why.
    writeFileSync(path.join(gitDir, "config"), `[core]\n\tfsmonitor = "touch ${marker}.fsmonitor"\n`);
    git(s.project(), "-c", "core.fsmonitor=false", "commit", "-q", "--allow-empty", "-m", "after");
    expect((await s.checkpoint(2)).exitCode).toBe(0);
    const before = s.server.seen.length;
    expect((await s.run(2)).exitCode).toBe(0);
    const failed = s.ledger().filter((e) => e.action === "push-failed");
    expect(failed).toHaveLength(1);
    expect(failed[0]!.reason).toContain("project/.git/config sets core.fsmonitor,");
    expect(s.server.seen.length).toBe(before);
    expect(readdirSync(s.repos).filter((n) => n.startsWith("ran"))).toEqual([]);
    expect(evil.seen).toEqual([]);

    // Nor one that redirects a URL or names a credential helper: refused, the key named.
    writeFileSync(
      path.join(gitDir, "config"),
      `[url "${evil.url}/"]\n\tinsteadOf = ${s.server.url}/\n` +
        `[credential]\n\thelper = "!touch ${marker}.credential"\n`,
    );
    git(s.project(), "commit", "-q", "--allow-empty", "-m", "later");
    expect((await s.checkpoint(3)).exitCode).toBe(0);
    expect((await s.run(3)).exitCode).toBe(0);
    const refused = s.ledger().filter((e) => e.action === "push-failed");
    expect(refused).toHaveLength(2);
    expect(refused[1]!.reason).toContain("project/.git/config sets url.*.insteadof,");
    expect(refused[1]!.reason).not.toContain(evil.url);
    expect(s.server.seen.length).toBe(before);
    expect(readdirSync(s.repos).filter((n) => n.startsWith("ran"))).toEqual([]);
    expect(evil.seen).toEqual([]);
  }, 300_000);

  it("pushes nothing when the cell declares no push", async () => {
    const s = await setup({ push: false });
    expect((await s.run(0)).exitCode).toBe(0);
    await s.memberCommitted();
    expect((await s.checkpoint(1)).exitCode).toBe(0);
    expect((await s.run(1)).exitCode).toBe(0);
    s.close();
    expect((await s.run(2)).exitCode).toBe(0);
    expect(s.server.seen).toEqual([]);
    expect(s.ledger().filter((e) => e.action.startsWith("push"))).toEqual([]);
    const plan = await s.cli(["plan", "-c", s.config, "--now", T(2)]);
    expect(plan.stdout).not.toContain("pushes");
    const dry = await s.cli(["publish", "--dry-run", "--json"]);
    expect((JSON.parse(dry.stdout) as { pushes: unknown[] }).pushes).toEqual([]);
  }, 300_000);
});
