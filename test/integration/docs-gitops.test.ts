// docs/gitops.md works as written: every command of its shell blocks and CI steps runs here, in a
// temp dir, against real git (stock configuration: a bare repo's HEAD points at master).
// `lazarus` and `npx lazarus` are this checkout's CLI; /tmp/fleet*, /var/lib/lazarus, the example
// repo URL and /path/to/lazarus are mapped into the temp dir. The deploy section's watch line is
// the rehearsal's watch with more flags (a fixed metrics port), so only the rehearsal's one runs.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, ROOT, cleanup, isAlive, readRecord, tempDir, waitFor } from "../helpers.js";

const doc = readFileSync(path.join(ROOT, "docs", "gitops.md"), "utf8");
const T = tempDir("lazarus-docs-");
const state = path.join(T, "fleet-state");
const bin = path.join(T, "bin");
mkdirSync(bin);
writeFileSync(path.join(bin, "lazarus"), `#!/bin/sh\nexec node ${JSON.stringify(CLI)} "$@"\n`);
writeFileSync(
  path.join(bin, "npx"),
  `#!/bin/sh\n[ "$1" = lazarus ] || exit 127\nshift\nexec node ${JSON.stringify(CLI)} "$@"\n`,
);
chmodSync(path.join(bin, "lazarus"), 0o755);
chmodSync(path.join(bin, "npx"), 0o755);
const env = {
  PATH: `${bin}:${process.env.PATH}`,
  NO_COLOR: "1",
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_AUTHOR_NAME: "docs",
  GIT_AUTHOR_EMAIL: "docs@example.org",
  GIT_COMMITTER_NAME: "docs",
  GIT_COMMITTER_EMAIL: "docs@example.org",
};
afterAll(() => cleanup(state, T));

const local = (line: string) =>
  line
    .replaceAll("https://git.example.org/fleet/fleet-config.git", path.join(T, "fleet.git"))
    .replaceAll("/var/lib/lazarus", state)
    .replaceAll("/tmp/fleet", path.join(T, "fleet"))
    .replaceAll("/path/to/lazarus", ROOT);

// The shell block that follows `marker` in the guide, as lines.
function shBlock(marker: string): string[] {
  const at = doc.indexOf(marker);
  expect(at, marker).toBeGreaterThanOrEqual(0);
  const m = /```sh\n([\s\S]*?)```/.exec(doc.slice(at));
  return (m?.[1] ?? "").split("\n").filter((l) => l.trim() !== "");
}

async function sh(script: string, cwd: string): Promise<{ exitCode: number | undefined; out: string }> {
  const r = await execa("bash", ["-euo", "pipefail", "-c", script], {
    cwd,
    env,
    reject: false,
    all: true,
    timeout: 120_000,
  });
  return { exitCode: r.exitCode, out: String(r.all ?? "") };
}

// Alive: its pid exists and is not a zombie (/proc, not kill -0).
const alive = (pid: number): boolean => isAlive(pid, undefined);

describe("docs/gitops.md, command by command", () => {
  it("the local rehearsal: a stock bare repo, the example cell and its agent, sync --dry-run, then watch applies it", async () => {
    const lines = shBlock("A quick local rehearsal").map(local);
    const w = lines.findIndex((l) => l.startsWith("lazarus watch "));
    expect(w).toBeGreaterThan(0);
    const before = await sh(`${lines.slice(0, w).join("\n")}\npwd > ${path.join(T, "cwd")}`, T);
    expect(before.exitCode, before.out).toBe(0);
    expect(before.out).toContain("dry-run: plan of");
    const cwd = readFileSync(path.join(T, "cwd"), "utf8").trim();
    const log = path.join(T, "watch.log");
    const started = await sh(`exec ${lines[w]} > ${log} 2>&1 & echo $! > ${path.join(T, "watch.pid")}`, cwd);
    expect(started.exitCode).toBe(0);
    const pid = Number(readFileSync(path.join(T, "watch.pid"), "utf8"));
    try {
      const cell = path.join(state, "cells", "timmy-config-262");
      await waitFor(
        () =>
          existsSync(path.join(cell, ".lazarus", "cell.json")) &&
          readRecord(cell).members.some((m) => m.identity === "agent:allegro" && m.status === "running"),
        30_000,
      );
      await new Promise((r) => setTimeout(r, 1_500)); // the member stays up (its script is in the repo)
      const agent = readRecord(cell).members.find((m) => m.identity === "agent:allegro");
      expect(agent?.status, readFileSync(log, "utf8")).toBe("running");
      expect(alive(agent?.pid as number)).toBe(true);
    } finally {
      process.kill(pid, "SIGTERM");
      await waitFor(() => !alive(pid), 20_000);
    }
  });

  it("the pull-request CI steps and the saved-plan flow, in a CI-like checkout of a change", async () => {
    const ci = path.join(T, "ci");
    const setup = await sh(
      `git clone -q -b main ${path.join(T, "fleet.git")} ${ci} && cd ${ci} && git checkout -q -b change && sed -i 's/ttl: 4h/ttl: 6h/' cells.d/timmy-config.yaml && git commit -qam 'ttl 6h'`,
      T,
    );
    expect(setup.exitCode, setup.out).toBe(0);
    const steps = [...doc.matchAll(/^\s+- run: (.*)$/gm)]
      .map((m) => m[1] as string)
      .filter((s) => !s.startsWith("gh "));
    expect(steps.length).toBeGreaterThanOrEqual(3);
    for (const step of steps) {
      const r = await sh(local(step), ci);
      expect(r.exitCode, `${step}\n${r.out}`).toBe(0);
    }
    expect(readFileSync(path.join(ci, "plan.md"), "utf8")).toContain("timmy-config-262");
    const diff = await sh("lazarus diff --repo . --base origin/main --head HEAD", ci);
    expect(diff.exitCode, diff.out).toBe(2);
    expect(diff.out).toContain("ttl: 4h → 6h");
    for (const line of shBlock("save the plan and apply that file").map(local)) {
      const r = await sh(line, ci);
      expect(r.exitCode, `${line}\n${r.out}`).toBe(0);
    }
    expect(readRecord(path.join(state, "cells", "timmy-config-262")).ttlMs).toBe(6 * 3_600_000);
  });

  it("the deploy pass: sync --ref main", async () => {
    const line = shBlock("or, from cron or a CI job after merge, one pass")
      .map(local)
      .find((l) => l.startsWith("lazarus sync"));
    expect(line).toBeDefined();
    const r = await sh(line as string, T);
    expect(r.exitCode, r.out).toBe(0);
    expect(r.out).toMatch(/: (applied|unchanged): /);
  });
});
