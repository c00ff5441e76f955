// The README's layout, one cell per file, must not cost more per file than the file's own read: a
// fleet of a few thousand one-cell files is read by every `lazarus plan`. Watched in the system
// calls of a real `lazarus plan --json` (strace), which count the same on a busy machine and a quiet
// one, where a timing would not: each file is opened once and named by no other call, and the
// directories and host facts that are the same for every file are looked up a fixed number of times,
// whatever the number of files. Skips with the reason when strace is missing or may not trace here.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, cellYaml, cleanup, configDir, tempDir } from "../helpers.js";

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));

function straceProblem(): string | undefined {
  const r = spawnSync("strace", ["-f", "-o", "/dev/null", "true"], { encoding: "utf8" });
  if (r.error) return `strace is not installed (${r.error.message})`;
  if (r.status !== 0) return `strace cannot trace here: ${r.stderr.trim()}`;
  return undefined;
}
const skip = straceProblem();
if (skip) console.log(`skipped: ${skip}`);

// The system calls of `lazarus plan --json` over n one-cell files that name a path, one per line.
function planCalls(n: number): { config: string; calls: string[] } {
  const files: Record<string, string> = {};
  for (let i = 0; i < n; i++) files[`cells.d/cell-${i}.yaml`] = cellYaml({ name: `cell-${i}` });
  const config = configDir(files);
  const state = tempDir("lazarus-state-");
  const out = path.join(tempDir("lazarus-strace-"), "calls");
  dirs.push(config, state, path.dirname(out));
  const r = spawnSync(
    "strace",
    ["-f", "-qq", "-e", "trace=%file,%desc", "-o", out, "node", CLI, "plan", "--json"].concat([
      "--config",
      config,
      "--state-dir",
      state,
      "--now",
      "2030-01-01T00:00:00Z",
    ]),
    { encoding: "utf8" },
  );
  expect(r.status, r.stderr).toBe(0);
  expect(JSON.parse(r.stdout).actions).toHaveLength(n);
  return { config, calls: readFileSync(out, "utf8").split("\n") };
}

describe.skipIf(skip !== undefined)("a config of one cell per file", () => {
  it("opens each file once, and looks up what all files share a fixed number of times", () => {
    const small = planCalls(5);
    const large = planCalls(40);
    for (const { config, calls } of [small, large]) {
      const n = calls.filter((c) => c.includes(`${config}/cells.d/cell-0.yaml"`)).length;
      expect(n, "calls naming cells.d/cell-0.yaml").toBe(1);
    }
    // The same for 5 files as for 40: the config dir, cells.d/ and /proc/meminfo (the default memory
    // ceiling) are not looked up again for each file.
    const shared = ({ config, calls }: { config: string; calls: string[] }): number[] => [
      calls.filter((c) => c.includes(`"${config}/cells.d"`)).length,
      calls.filter((c) => c.includes(`"${config}"`)).length,
      calls.filter((c) => c.includes('"/proc/meminfo"')).length,
    ];
    expect(shared(large)).toEqual(shared(small));
  });
});
