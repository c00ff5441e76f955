// lazarus_pushes_total on the real daemon's /metrics: a cell that pushes its branch (spec.push) to
// a real bare repository served by `git http-backend` on 127.0.0.1 (test/git-http.ts), whose
// first answer is a 500 (a forge having a bad minute): the daemon counts a retried push, then the
// pushed one, and the scrape passes `promtool check metrics`.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import type http from "node:http";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { which } from "../../src/util/which.js";
import {
  cellYaml,
  cleanup,
  configDir,
  freePort,
  lazarus,
  startWatching,
  stopWatches,
  tempDir,
  waitFor,
  ROOT,
} from "../helpers.js";
import { StandIn } from "./stand-in.js";
import { gitHttpServer } from "../git-http.js";

const TOKEN = "s3cret-push-metrics-0123456789";
const BRANCH = "feature/metrics";
const COMMITTER = path.join(ROOT, "test", "fixtures", "branch-committer.sh");
const promtool = which("promtool", process.env.PATH);

const dirs: string[] = [];
let server: http.Server | undefined;
let forge: StandIn | undefined;
afterAll(async () => {
  await stopWatches();
  await forge?.stop();
  if (server) await new Promise((r) => server?.close(r));
  cleanup(...dirs);
});

const sample = (text: string, series: string): number | undefined => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe("lazarus watch /metrics: pushes", () => {
  it("counts the daemon's pushes by outcome: a forge's 500 retried, then pushed", async () => {
    forge = new StandIn("gitea", TOKEN);
    await forge.start();
    const repos = tempDir("lazarus-repos-");
    mkdirSync(path.join(repos, "Org"));
    execFileSync("git", ["init", "-q", "--bare", path.join(repos, "Org", "repo.git")]);
    const git = await gitHttpServer(repos, { token: TOKEN, script: [500] });
    server = git.server;
    const yaml = (n: number) =>
      `${cellYaml({
        name: "c",
        members: [{ identity: "agent:allegro", command: ["sh", COMMITTER], env: { BRANCH } }],
        extra: `  push: {branch: ${BRANCH}}`,
      })}# touched ${n}\n`;
    const config = configDir({ "cells.d/c.yaml": yaml(0) });
    const state = tempDir("lazarus-state-");
    const secrets = tempDir("lazarus-secrets-");
    const table = `${secrets}-forges.yaml`;
    dirs.push(config, state, secrets, repos, table);
    mkdirSync(path.join(secrets, "forge"));
    writeFileSync(path.join(secrets, "forge", "token"), `${TOKEN}\n`);
    writeFileSync(
      table,
      `forges:\n  - match: "Org/"\n    kind: gitea\n    url: ${forge.url}\n` +
        `    gitUrl: ${git.url}\n    tokenFile: forge/token\n`,
    );
    const env = { LAZARUS_FORGES: table, LAZARUS_SECRETS_DIR: secrets };
    const port = await freePort();
    await startWatching(
      ["--config", config, "--state-dir", state, "--metrics-port", String(port), "--stop-timeout", "2000"],
      env,
    );
    const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const series = (outcome: string) => `lazarus_pushes_total{outcome="${outcome}"}`;
    let text = await scrape();
    for (const outcome of ["pushed", "failed", "rejected", "retried"]) expect(sample(text, series(outcome))).toBe(0);

    const project = path.join(state, "cells", "c", "project");
    await waitFor(() => {
      try {
        execFileSync("git", ["-C", project, "rev-parse", "--verify", "--quiet", `refs/heads/${BRANCH}`]);
        return true;
      } catch {
        return false;
      }
    }, 30_000);
    const cp = await lazarus(["checkpoint", "c", "-s", state], { env, timeoutMs: 90_000 });
    expect(cp.exitCode, cp.stdout + cp.stderr).toBe(0);
    // Each change under cells.d/ is a reconcile, and each reconcile a publish pass: the first
    // meets the 500, a later one (after the 0.5 s backoff) pushes.
    const end = Date.now() + 60_000;
    for (let n = 1; Date.now() < end; n++) {
      text = await scrape();
      if ((sample(text, series("pushed")) ?? 0) >= 1) break;
      writeFileSync(path.join(config, "cells.d", "c.yaml"), yaml(n));
      await new Promise((r) => setTimeout(r, 700));
    }
    expect(sample(text, series("retried"))).toBe(1);
    expect(sample(text, series("pushed"))).toBe(1);
    expect(sample(text, series("failed"))).toBe(0);
    expect(sample(text, series("rejected"))).toBe(0);
    expect(git.seen.filter((r) => r.status === 500)).toHaveLength(1);
    if (promtool) {
      const r = await execa(promtool, ["check", "metrics"], { input: text, reject: false });
      expect(`${r.stdout}${r.stderr}`.trim()).toBe("");
    }
  }, 180_000);
});
