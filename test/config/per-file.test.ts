// The README's layout, one cell per file, must not cost more per file than the file's own read: a
// fleet of a few thousand one-cell files is read by every `lazarus plan`. Watched in the system
// calls of a real `lazarus plan --json` (strace), which count the same on a busy machine and a quiet
// one, where a timing would not: each file is opened once and named by no other call, and the
// directories and host facts that are the same for every file are looked up a fixed number of times,
// whatever the number of files. Skips with the reason when strace is missing or may not trace here.
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, ROOT, cellYaml, cleanup, configDir, tempDir } from "../helpers.js";

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
// extra: more lines of each cell's spec; env: Lazarus's settings.
function planCalls(n: number, extra?: string, env: Record<string, string> = {}): { config: string; calls: string[] } {
  const files: Record<string, string> = {};
  for (let i = 0; i < n; i++)
    files[`cells.d/cell-${i}.yaml`] = cellYaml({ name: `cell-${i}`, ...(extra ? { extra } : {}) });
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
    { encoding: "utf8", env: { ...process.env, ...env } },
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

// The operator's provider and forge tables feed every egress cell's automatic entries: they are
// read once per load, not once per cell file (each is named by a fixed number of calls: a stat, an
// open, and the host settings' own check of the forge table).
describe.skipIf(skip !== undefined)("a config of one egress cell per file", () => {
  it("reads the provider and forge tables a fixed number of times, whatever the number of files", () => {
    const tables = tempDir("lazarus-tables-");
    dirs.push(tables);
    const providers = path.join(tables, "providers.yaml");
    const forges = path.join(tables, "forges.yaml");
    writeFileSync(providers, 'providers:\n  - {name: so, baseUrl: "https://llm.example.org/v1"}\n');
    writeFileSync(forges, 'forges:\n  - {match: "Org/", kind: gitea, url: "https://gitea.example.org"}\n');
    const env = { LAZARUS_PROVIDERS: providers, LAZARUS_FORGES: forges };
    const egress = "  backend: sandbox\n  network: {egress: [api.example.org]}";
    const named = ({ calls }: { calls: string[] }): number[] => [
      calls.filter((c) => c.includes(`"${providers}"`)).length,
      calls.filter((c) => c.includes(`"${forges}"`)).length,
    ];
    const small = named(planCalls(3, egress, env));
    const large = named(planCalls(30, egress, env));
    expect(large).toEqual(small);
    expect(small[0], "calls naming the provider table").toBeGreaterThan(0); // it was read at all
    expect(small[0]).toBeLessThanOrEqual(4);
    expect(small[1]).toBeLessThanOrEqual(4);
  });
});

// hostLimits() is asked per cell and per member (verify, the gateway's cell files, each plan):
// the host's memory, which it needs for the default ceiling, is read from /proc/meminfo once per
// process. Counted in a real node process calling it none, then 200 times.
describe.skipIf(skip !== undefined)("the host's limits", () => {
  it("read /proc/meminfo once per process, however often they are asked", () => {
    const limits = path.join(ROOT, "dist", "host", "limits.js");
    const reads = (asks: number): number => {
      const out = path.join(tempDir("lazarus-strace-"), "calls");
      dirs.push(path.dirname(out));
      const script = `const { hostLimits } = await import(${JSON.stringify(limits)}); for (let i = 0; i < ${asks}; i++) hostLimits({});`;
      const r = spawnSync(
        "strace",
        ["-f", "-qq", "-e", "trace=%file", "-o", out, "node", "--input-type=module", "-e", script],
        {
          encoding: "utf8",
        },
      );
      expect(r.status, r.stderr).toBe(0);
      return readFileSync(out, "utf8")
        .split("\n")
        .filter((c) => c.includes('"/proc/meminfo"')).length;
    };
    const none = reads(0); // node itself may read it at start
    expect(reads(200) - none).toBe(1);
  });
});
