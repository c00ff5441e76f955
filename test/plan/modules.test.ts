// What `lazarus plan` loads: its read-only modules, not what only apply, render, publish or a
// backend's host step run (each is imported where it runs). Counted with a module loader hook in
// the real CLI's process, on a config of process cells (the README's layout).
import { writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, ROOT, cellYaml, cleanup, configDir, tempDir } from "../helpers.js";

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));

// The dist/ modules (relative to dist/) a plan --json of config loads, in load order.
async function loadedBy(config: string, state: string): Promise<string[]> {
  const hooks = tempDir("lazarus-hooks-");
  dirs.push(hooks);
  writeFileSync(
    path.join(hooks, "hooks.mjs"),
    "export async function load(url, context, next) { console.error(`LOADED ${url}`); return next(url, context); }\n",
  );
  writeFileSync(
    path.join(hooks, "register.mjs"),
    'import { register } from "node:module";\nregister("./hooks.mjs", import.meta.url);\n',
  );
  const r = await execa(
    "node",
    ["--import", path.join(hooks, "register.mjs"), CLI, "plan", "--json", "--config", config, "--state-dir", state],
    { reject: false, env: { NO_COLOR: "1" } },
  );
  expect(r.exitCode, r.stderr).toBe(0);
  const dist = `file://${path.join(ROOT, "dist")}/`;
  return String(r.stderr)
    .split("\n")
    .filter((l) => l.startsWith(`LOADED ${dist}`))
    .map((l) => l.slice(`LOADED ${dist}`.length));
}

describe("plan's modules", () => {
  it("loads the config and plan code, and none of the backends' host checks, renderers or the forge's pushes", async () => {
    const config = configDir({
      "cells.d/a.yaml": cellYaml({ name: "a", members: [{ identity: "agent:a", command: ["sleep", "60"] }] }),
    });
    const state = tempDir("lazarus-state-");
    dirs.push(config, state);
    const loaded = await loadedBy(config, state);
    // The hook sees the CLI's own modules (so an empty list cannot pass for "nothing unwanted").
    expect(loaded).toEqual(expect.arrayContaining(["cli/plan.js", "config/load.js", "backends/table.js"]));
    const unwanted = [
      "backends/container/engine.js",
      "backends/container/user.js",
      "backends/container/argv.js",
      "backends/sandbox/cgroup.js",
      "backends/sandbox/host.js",
      "backends/remote/hosts.js",
      "backends/kubernetes/render.js",
      "backends/disk/host.js",
      "util/which.js",
      "forge/pushes.js",
      "forge/git-push.js",
      "forge/worker.js",
      "forge/outbox.js",
      "progress/evidence.js",
      "apply/member-git.js",
    ];
    expect(loaded.filter((m) => unwanted.includes(m))).toEqual([]);
  });
});
