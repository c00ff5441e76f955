// What should be published, read afresh from the cells' own files each time (level-triggered, so
// nothing is lost to a crash between an action and its queueing): a live cell's spawn comment
// (its members as they are, and those who left), a closed cell's spawn and close comments.
import { readdir } from "node:fs/promises";
import path from "node:path";
import { cellPaths, type StatePaths } from "../cells/layout.js";
import type { CellRecord } from "../cells/record.js";
import { CAPS, readUntrustedJson } from "../util/safe-fs.js";
import { publicationOf, type Forge, type Publication } from "./table.js";
import type { CloseFacts, Facts, PushFacts, RosterRow, SpawnFacts } from "./render.js";
import { dropEntry, readEntries, saveEntry, withFacts, type OutboxEntry } from "./outbox.js";
import { failpoint } from "../util/failpoint.js";

// A cell's incarnation for publication: new at create and at each resurrection.
export const lifeOf = (rec: Pick<CellRecord, "uid" | "life">): string => rec.life ?? rec.uid;

// What close.log holds (written by close in src/apply/ops.ts).
interface CloseLog {
  closedAt?: string;
  reason?: string;
  members?: { identity: string; role: string; status: string }[];
  checkpoints?: string[];
  projectChanges?: { source?: "git" | "mtime"; files?: string[]; commits?: string[]; branch?: string };
}

export interface Wanted {
  cell: string;
  life: string;
  project: string;
  publication: Publication;
  facts: Facts;
}

const LIVE = new Set(["active", "downed", "checkpointing"]);

export async function records(dir: string): Promise<{ dir: string; rec: CellRecord }[]> {
  const out: { dir: string; rec: CellRecord }[] = [];
  for (const name of (await readdir(dir).catch(() => [] as string[])).sort()) {
    if (name.startsWith(".")) continue;
    const cellDir = path.join(dir, name);
    const rec = await readUntrustedJson<CellRecord>(cellPaths(cellDir).record, CAPS.record, cellDir).catch(
      () => undefined,
    );
    if (rec) out.push({ dir: cellDir, rec: { ...rec, name } });
  }
  return out;
}

// The roster: every member seen in this incarnation, those gone marked with when they left.
export function roster(old: RosterRow[], rec: CellRecord, now: string): RosterRow[] {
  const key = (r: { identity: string; role: string }) => `${r.identity}\u0000${r.role}`;
  const present = new Set(rec.members.map(key));
  const rows = old.map((r) => (r.leftAt || present.has(key(r)) ? r : { ...r, leftAt: now }));
  const current = new Set(rows.filter((r) => !r.leftAt).map(key));
  for (const m of rec.members)
    if (!current.has(key(m))) rows.push({ identity: m.identity, role: m.role, joinedAt: m.joinedAt });
  return rows;
}

function spawnFacts(rec: CellRecord, old: OutboxEntry | undefined, now: string): SpawnFacts {
  const prev = old?.facts.kind === "spawn" ? old.facts.spawn.members : [];
  return {
    cell: rec.name,
    project: rec.project,
    life: lifeOf(rec),
    backend: rec.backend,
    owner: rec.owner,
    createdAt: rec.activatedAt ?? rec.createdAt,
    members: roster(prev, rec, now),
  };
}

function closeFacts(rec: CellRecord, log: CloseLog, push: PushFacts | undefined): CloseFacts {
  const changes = log.projectChanges ?? {};
  return {
    ...(push ? { push } : {}),
    cell: rec.name,
    project: rec.project,
    life: lifeOf(rec),
    backend: rec.backend,
    startedAt: rec.activatedAt ?? rec.createdAt,
    closedAt: log.closedAt ?? rec.closedAt ?? rec.updatedAt,
    outcome: log.reason ?? rec.closeReason ?? "closed",
    members: (log.members ?? []).map((m) => ({ identity: m.identity, role: m.role, status: m.status })),
    ...(changes.branch ? { branch: changes.branch } : {}),
    commits: (changes.commits ?? []).map((l) => ({ sha: l.slice(0, 40), subject: l.slice(41) })),
    files: changes.files ?? [],
    filesFrom: changes.source === "git" ? "git" : "mtime",
    checkpoints: log.checkpoints ?? [],
  };
}

// Every comment the cells' files call for now (entries: the outbox as it is, for rosters).
export async function wantedComments(
  paths: StatePaths,
  forges: Forge[],
  entries: OutboxEntry[],
  now: string,
  only?: string,
  pushes: Map<string, PushFacts> = new Map(), // by `${cell}.${life}` (src/forge/pushes.ts)
): Promise<Wanted[]> {
  const byName = new Map(entries.map((e) => [`${e.cell}.${e.life}.${e.kind}`, e]));
  const out: Wanted[] = [];
  const add = (rec: CellRecord, facts: Facts) =>
    out.push({
      cell: rec.name,
      life: lifeOf(rec),
      project: rec.project,
      publication: publicationOf(forges, rec.project),
      facts,
    });
  for (const { rec } of await records(paths.cells)) {
    if (only !== undefined && rec.name !== only) continue;
    if (!LIVE.has(rec.state)) continue;
    add(rec, { kind: "spawn", spawn: spawnFacts(rec, byName.get(`${rec.name}.${lifeOf(rec)}.spawn`), now) });
  }
  for (const { dir, rec } of await records(paths.graveyard)) {
    if (only !== undefined && rec.name !== only) continue;
    if (rec.state !== "closed") continue;
    const log = await readUntrustedJson<CloseLog>(cellPaths(dir).closeLog, CAPS.record, dir).catch(() => undefined);
    add(rec, { kind: "spawn", spawn: spawnFacts(rec, byName.get(`${rec.name}.${lifeOf(rec)}.spawn`), now) });
    if (log) add(rec, { kind: "close", close: closeFacts(rec, log, pushes.get(`${rec.name}.${lifeOf(rec)}`)) });
  }
  return out;
}

// Queue what the cells call for (publishing cells only) and drop finished entries of incarnations
// that are gone. Returns the entries as they now are.
export async function queueComments(
  stateRoot: string,
  paths: StatePaths,
  forges: Forge[],
  now: string,
  pushes?: Map<string, PushFacts>,
): Promise<OutboxEntry[]> {
  const entries = await readEntries(stateRoot);
  const wanted = await wantedComments(paths, forges, entries, now, undefined, pushes);
  const byName = new Map(entries.map((e) => [`${e.cell}.${e.life}.${e.kind}`, e]));
  const keep = new Set<string>();
  for (const w of wanted) {
    const name = `${w.cell}.${w.life}.${w.facts.kind}`;
    keep.add(name);
    if (!w.publication.publishes) continue;
    const r = withFacts(byName.get(name), w.cell, w.life, w.project, w.facts, now);
    if (r.changed) {
      await saveEntry(stateRoot, r.entry);
      failpoint("publish:queued");
    }
    byName.set(name, r.entry);
  }
  for (const [name, e] of byName) {
    if (keep.has(name) || e.status === "pending" || e.recorded === false) continue;
    await dropEntry(stateRoot, e);
    byName.delete(name);
  }
  return [...byName.values()];
}
