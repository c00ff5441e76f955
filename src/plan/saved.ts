// Saved plans: `plan --out` writes the actions with the desired revision and a fingerprint of the
// observed state of each cell they touch; `apply FILE` applies exactly those actions, refusing any
// cell whose observed state changed since (a stale plan).
import { canonicalJson, desiredDigest, sha256 } from "../config/digest.js";
import type { Desired } from "../config/types.js";
import type { Observed, ObservedName } from "../observe/observe.js";
import type { Action } from "./actions.js";
import type { Plan } from "./plan.js";

export const SAVED_PLAN_FORMAT = 1;

export interface SavedPlan {
  formatVersion: typeof SAVED_PLAN_FORMAT;
  kind: "lazarus-plan";
  revision: string; // commit SHA when the config is in git, else a content hash
  configDir: string;
  now: string;
  actions: Action[];
  fingerprints: Record<string, string>; // cell → observed fingerprint when planned
}

// What was observed of one cell, minus what changes by itself (heartbeats, exit file times).
// A name with nothing on disk has one fingerprint whether its slot is missing or empty.
export function fingerprint(o: ObservedName | undefined = { archives: [] }): string {
  const cell = (c: ObservedName["live"]) =>
    c
      ? {
          record: c.record ?? c.unreadable,
          alive: c.members.map((m) => [m.identity, m.alive]),
          checkpoints: c.checkpoints.map((k) => k.name),
        }
      : null;
  return sha256(
    canonicalJson({
      live: cell(o.live),
      graveyard: cell(o.graveyard),
      archives: o.archives.map((a) => a.record ?? a.unreadable),
    }),
  ).slice(0, 24);
}

// A hash of the desired state, for a config that is not a git work tree.
export function contentRevision(desired: Desired): string {
  const cells = [...desired.cells.values()].map((c) => [c.name, desiredDigest(c)]).sort();
  const portfolios = [...desired.portfolios.values()]
    .map(({ source: _s, ...p }) => p)
    .sort((a, b) => a.name.localeCompare(b.name));
  return `content:${sha256(canonicalJson({ cells, portfolios })).slice(0, 16)}`;
}

export function savePlan(plan: Plan, observed: Observed, revision: string, configDir: string): SavedPlan {
  const fingerprints: Record<string, string> = {};
  for (const a of plan.actions) fingerprints[a.cell] ??= fingerprint(observed.cells.get(a.cell));
  return {
    formatVersion: SAVED_PLAN_FORMAT,
    kind: "lazarus-plan",
    revision,
    configDir,
    now: plan.now,
    actions: plan.actions,
    fingerprints,
  };
}

// Cells whose observed state no longer matches the plan's fingerprint.
export function staleCells(saved: SavedPlan, observed: Observed): string[] {
  return Object.entries(saved.fingerprints)
    .filter(([cell, fp]) => fingerprint(observed.cells.get(cell)) !== fp)
    .map(([cell]) => cell)
    .sort();
}
