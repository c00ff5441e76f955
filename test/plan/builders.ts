// Builders for planner tests: desired state from YAML, observed state from plain records.
import { loadFileText } from "../../src/config/load.js";
import type { Desired, DesiredCell } from "../../src/config/types.js";
import type { CellRecord, MemberRecord } from "../../src/cells/record.js";
import { syncMember, syncRecord } from "../../src/cells/fields.js";
import { desiredDigest } from "../../src/config/digest.js";
import type { Observed, ObservedCell, ObservedName, Place } from "../../src/observe/observe.js";
import { cellYaml, type CellOpts } from "../helpers.js";

export const T0 = Date.parse("2026-11-25T12:00:00Z");
export const MIN = 60_000;
export const HOUR = 60 * MIN;
export const iso = (ms: number) => new Date(ms).toISOString();

export function desiredOf(...cells: CellOpts[]): Desired {
  const r = loadFileText("cells.d/test.yaml", cells.map(cellYaml).join("---\n"));
  if (r.diagnostics.length > 0) throw new Error(JSON.stringify(r.diagnostics));
  return {
    cells: new Map(r.cells.map((c) => [c.name, c])),
    portfolios: new Map(),
    portfoliosHeld: false,
    quarantined: [],
    files: ["cells.d/test.yaml"],
  };
}

// The record apply would have written for a desired cell activated at `activated`.
export function recordOf(d: DesiredCell, activated = T0, over: Partial<CellRecord> = {}): CellRecord {
  const members = d.members.map((dm, i) => {
    const m: MemberRecord = {
      identity: dm.identity,
      home: dm.home,
      role: dm.role,
      env: {},
      status: dm.command ? "running" : "joined",
      restarts: 0,
      joinedAt: iso(activated),
    };
    syncMember(m, dm); // its command, env, limits and policies, as apply records them
    return dm.command ? { ...m, pid: 1000 + i, startTime: 1, startedAt: iso(activated) } : m;
  });
  // The declared fields are written by the table apply writes them with (syncRecord); the rest is
  // what create leaves.
  const rec: CellRecord = {
    formatVersion: 1,
    uid: `uid-${d.name}`,
    name: d.name,
    state: "active",
    project: d.project,
    owner: d.owner,
    backend: d.backend,
    labels: {},
    sourceFile: d.source.file,
    ttlMs: d.ttlMs,
    graceMs: d.graceMs,
    retentionMs: d.retentionMs,
    policy: d.policy,
    credentialsDigest: "",
    createdAt: iso(activated),
    activatedAt: iso(activated),
    expiresAt: iso(activated + d.ttlMs),
    members,
    updatedAt: iso(activated),
  };
  syncRecord(rec, d); // every declared field, as apply records it (src/cells/fields.ts)
  return Object.assign(rec, over);
}

export function closedRecordOf(d: DesiredCell, closedAt: number, over: Partial<CellRecord> = {}): CellRecord {
  return recordOf(d, closedAt - HOUR, {
    state: "closed",
    closedAt: iso(closedAt),
    closedDigest: desiredDigest(d),
    ...over,
  });
}

export interface ObservedEntry {
  record: CellRecord;
  place?: Place;
  checkpoints?: number[]; // times of whole checkpoints
  exits?: Record<string, { code: number; at: number }>;
  heartbeats?: Record<string, number>;
  alive?: boolean | Record<string, boolean>; // default: every member with a pid is alive
}

export function observedOf(...entries: ObservedEntry[]): Observed {
  const cells = new Map<string, ObservedName>();
  for (const e of entries) {
    const place = e.place ?? "cells";
    const c: ObservedCell = {
      name: e.record.name,
      place,
      dir: `/state/${place}/${e.record.name}`,
      record: e.record,
      checkpoints: (e.checkpoints ?? []).map((t) => ({
        file: `/state/${place}/${e.record.name}/.lazarus/checkpoints/${t}.tar.gz`,
        name: `${t}.tar.gz`,
        takenAt: t,
      })),
      members: e.record.members.map((m) => ({
        ...m,
        alive: m.pid !== undefined && (typeof e.alive === "object" ? (e.alive[m.identity] ?? true) : (e.alive ?? true)),
        ...(e.exits?.[m.identity] ? { exit: e.exits[m.identity] } : {}),
        ...(e.heartbeats?.[m.identity] !== undefined ? { heartbeatAt: e.heartbeats[m.identity] } : {}),
      })),
    };
    const slot = cells.get(c.name) ?? { archives: [] };
    if (place === "cells") slot.live = c;
    else if (place === "graveyard") slot.graveyard = c;
    else slot.archives.push(c);
    cells.set(c.name, slot);
  }
  return { cells };
}
