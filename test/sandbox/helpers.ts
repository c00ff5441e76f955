// Helpers for tests of the sandbox backend: whether this host can run it, settings that keep
// each test file's uids and cgroups apart, and cleanup by cgroup (never by pattern).
import { existsSync, readFileSync, readdirSync, rmSync, rmdirSync } from "node:fs";
import { afterAll } from "vitest";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { sandboxHost } from "../../src/backends/sandbox/host.js";
import { ROOT, configDir, killAll, lazarus, tempDir, procState, uidBand, type UidBandName } from "../helpers.js";

export const host = sandboxHost();
// Why sandbox tests cannot run here (printed by the skipping suite), or undefined.
export const skipReason = host.problems.length
  ? `sandbox backend unavailable here: ${host.problems.join("; ")}`
  : undefined;
if (skipReason) console.warn(`SKIPPED: ${skipReason}`);

export const FIXTURES = path.join(ROOT, "test", "fixtures");

// Environment for the CLI: a uid range and a cgroup root of this test file's own.
export function sandboxEnv(band: UidBandName, extra: Record<string, string> = {}): Record<string, string> {
  return {
    LAZARUS_UID_RANGE: uidBand(band).range,
    LAZARUS_CGROUP_ROOT: `lazarus-test-${randomBytes(4).toString("hex")}`,
    LAZARUS_SANDBOX_BINDS: FIXTURES,
    ...extra,
  };
}

// A state dir as mkdtemp makes it: 0700, which no cell uid can traverse (staging makes that moot).
export function sandboxStateDir(): string {
  return tempDir("lazarus-sbx-");
}

function cgroupDirs(rel: string): string[] {
  const base = "/sys/fs/cgroup";
  const out: string[] = [];
  for (const h of readdirSync(base)) {
    const d = path.join(base, h, rel);
    if (existsSync(d)) out.push(d);
  }
  if (existsSync(path.join(base, rel, "cgroup.procs"))) out.push(path.join(base, rel));
  return out;
}

// Every live process in a cgroup tree.
export function cgroupPids(rel: string): number[] {
  const pids = new Set<number>();
  const visit = (dir: string): void => {
    try {
      for (const l of readFileSync(path.join(dir, "cgroup.procs"), "utf8").split("\n")) if (l) pids.add(Number(l));
      for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) visit(path.join(dir, e.name));
    } catch {
      // gone
    }
  };
  for (const d of cgroupDirs(rel)) visit(d);
  return [...pids].filter((p) => procState(p) !== undefined && procState(p) !== "Z");
}

// Live processes running as uid.
export function uidPids(uid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const m = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${e}/status`, "utf8"));
      if (m && Number(m[1]) === uid && procState(Number(e)) !== "Z") out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

// Kill what the test's cells left in their cgroup root and remove it.
export async function cleanupCgroups(root: string): Promise<void> {
  for (let i = 0; i < 200 && cgroupPids(root).length; i++) {
    for (const pid of cgroupPids(root)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  const rmTree = (dir: string): void => {
    try {
      for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) rmTree(path.join(dir, e.name));
      rmdirSync(dir);
    } catch {
      // busy or gone
    }
  };
  for (const d of cgroupDirs(root)) rmTree(d);
}

// A state dir, a config dir and the CLI bound to them, with uids and a cgroup root of the suite's
// own; everything is removed (and every process of its cgroups killed) after the suite.
export function sandboxSuite(band: UidBandName, extra: Record<string, string> = {}) {
  const env = sandboxEnv(band, extra);
  const state = sandboxStateDir();
  const cfg = configDir({});
  const run = (...args: string[]) => lazarus([...args, "-c", cfg, "-s", state], { env });
  afterAll(async () => {
    await cleanupCgroups(env.LAZARUS_CGROUP_ROOT as string);
    killAll(state); // members of cells the suite moved to backend process (outside any cgroup)
    for (const d of [state, cfg]) rmSync(d, { recursive: true, force: true });
  });
  return { env, state, cfg, run };
}

export { procState };
