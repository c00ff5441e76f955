// Cells judged for progress (spec.progress), run through the real CLI with real member processes
// and real git repositories.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { AGENT, ROOT, cellYaml, configDir, lazarus, tempDir, type CellOpts, type CliResult } from "../helpers.js";
import type { ProgressState } from "../../src/progress/types.js";
import type { CellRecord } from "../../src/cells/record.js";

export const COMMITTER = path.join(ROOT, "test", "fixtures", "committer.sh");
export const idle = (identity = "agent:idle", extra: Partial<NonNullable<CellOpts["members"]>[number]> = {}) => ({
  identity,
  role: "executor",
  command: ["node", AGENT],
  ...extra,
});

export interface ProgressCell {
  name: string;
  config: string;
  state: string;
  dir: string; // the live cell's dir
  run(args: string[], opts?: { env?: Record<string, string>; timeoutMs?: number }): Promise<CliResult>;
  apply(): Promise<CliResult>;
  plan(now?: number): Promise<{
    actions: { action: string; reason: string; evidence?: string[]; stall?: unknown }[];
    pending: { reason: string }[];
    diagnostics: { message: string }[];
  }>;
  status(now?: number): Promise<{ cells: Record<string, unknown>[] }>;
  progress(): ProgressState;
  record(): CellRecord;
  ledger(): { action: string; cell: string; time: string; details: Record<string, unknown> }[];
}

// A cell judged with this progress line (e.g. "  progress: {slice: 3s, onStall: notify}").
export function progressCell(name: string, progress: string, members: CellOpts["members"], more = ""): ProgressCell {
  const config = configDir({
    [`cells.d/${name}.yaml`]: cellYaml({ name, members, extra: `${progress}${more ? `\n${more}` : ""}` }),
  });
  const state = tempDir("lazarus-progress-state-");
  const dir = path.join(state, "cells", name);
  const run = (args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}) =>
    lazarus([...args, "--config", config, "--state-dir", state], opts);
  const at = (now?: number) => (now === undefined ? [] : ["--now", new Date(now).toISOString()]);
  return {
    name,
    config,
    state,
    dir,
    run,
    apply: () => run(["apply", "--yes"]),
    async plan(now) {
      const r = await run(["plan", "--json", ...at(now)]);
      return JSON.parse(r.stdout);
    },
    async status(now) {
      const r = await lazarus(["status", "--json", "--state-dir", state, ...at(now)]);
      return JSON.parse(r.stdout);
    },
    progress: () => JSON.parse(readFileSync(path.join(dir, ".lazarus", "progress.json"), "utf8")) as ProgressState,
    record: () => JSON.parse(readFileSync(path.join(dir, ".lazarus", "cell.json"), "utf8")) as CellRecord,
    ledger: () =>
      existsSync(path.join(state, "ledger.jsonl"))
        ? readFileSync(path.join(state, "ledger.jsonl"), "utf8")
            .split("\n")
            .filter(Boolean)
            .map((l) => JSON.parse(l))
        : [],
  };
}

// git as a test uses it in a cell's tree (its own identity, no host config).
export function git(cwd: string, args: string[], env: Record<string, string> = {}) {
  return execa("git", ["-c", "user.name=t", "-c", "user.email=t@test", ...args], {
    cwd,
    env: { GIT_CONFIG_NOSYSTEM: "1", HOME: cwd, ...env },
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// The graveyard entry's close log of a closed cell.
export function closeLog(c: ProgressCell): Record<string, unknown> {
  const grave = path.join(c.state, "graveyard");
  const entry = readdirSync(grave).find((e) => e === c.name) as string;
  return JSON.parse(readFileSync(path.join(grave, entry, ".lazarus", "close.log"), "utf8"));
}
