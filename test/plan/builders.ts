// Builders for planner tests: desired state from YAML, observed state from plain records.
import { loadFileText } from "../../src/config/load.js";
import type { Desired, DesiredCell } from "../../src/config/types.js";
import type { CellRecord, MemberRecord } from "../../src/cells/record.js";
import { credentialsDigest, desiredDigest } from "../../src/config/digest.js";
import type { Observed, ObservedCell, ObservedName, Place } from "../../src/observe/observe.js";
import { cellYaml, type CellOpts } from "../helpers.js";

export const T0 = Date.parse("2026-11-25T12:00:00Z");
export const MIN = 60_000;
export const HOUR = 60 * MIN;
export const iso = (ms: number) => new Date(ms).toISOString();

export function desiredOf(...cells: CellOpts[]): Desired {
  const r = loadFileText("cells.d/test.yaml", cells.map(cellYaml).join("---\n"));
  if (r.diagnostics.length > 0) throw new Error(JSON.stringify(r.diagnostics));
  return { cells: new Map(r.cells.map((c) => [c.name, c])), portfolios: new Map(), portfoliosHeld: false, quarantined: [], files: ["cells.d/test.yaml"] };
}

// The record apply would have written for a desired cell activated at `activated`.
export function recordOf(d: DesiredCell, activated = T0, over: Partial<CellRecord> = {}): CellRecord {
  const members: MemberRecord[] = d.members.map((m, i) => ({
    identity: m.identity,
    home: m.home,
    role: m.role,
    ...(m.command ? { command: m.command } : {}),
    env: m.env,
    status: m.command ? "running" : "joined",
    ...(m.command ? { pid: 1000 + i, startTime: 1, startedAt: iso(activated) } : {}),
    restart: m.restart,
    ...(m.heartbeatMs ? { heartbeatMs: m.heartbeatMs } : {}),
    restarts: 0,
    joinedAt: iso(activated),
  }));
  return {
    formatVersion: 1,
    uid: `uid-${d.name}`,
    name: d.name,
    state: "active",
    project: d.project,
    owner: d.owner,
    backend: d.backend,
    labels: d.labels,
    sourceFile: d.source.file,
    ttlMs: d.ttlMs,
    graceMs: d.graceMs,
    retentionMs: d.retentionMs,
    policy: d.policy,
    credentialsDigest: credentialsDigest(d.credentials),
    downedTimeoutMs: d.downedTimeoutMs,
    inviteTtlMs: d.inviteTtlMs,
    ...(d.checkpoint.schedule ? { checkpointSchedule: d.checkpoint.schedule } : {}),
    checkpointKeep: d.checkpoint.keep,
    ...(d.checkpoint.compression ? { checkpointCompression: d.checkpoint.compression } : {}),
    ...(d.checkpoint.maxBytes !== undefined ? { checkpointMaxBytes: d.checkpoint.maxBytes } : {}),
    createdAt: iso(activated),
    activatedAt: iso(activated),
    expiresAt: iso(activated + d.ttlMs),
    members,
    updatedAt: iso(activated),
    ...over,
  };
}

export function closedRecordOf(d: DesiredCell, closedAt: number, over: Partial<CellRecord> = {}): CellRecord {
  return recordOf(d, closedAt - HOUR, { state: "closed", closedAt: iso(closedAt), closedDigest: desiredDigest(d), ...over });
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
      checkpoints: (e.checkpoints ?? []).map((t) => ({ file: `/state/${place}/${e.record.name}/.lazarus/checkpoints/${t}.tar.gz`, name: `${t}.tar.gz`, takenAt: t })),
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
