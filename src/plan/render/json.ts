// The stable JSON view of a plan (formatVersion 1), documented in README.md.
import type { Diagnostic } from "../../config/diagnostics.js";
import type { Action } from "../actions.js";
import type { Plan } from "../plan.js";

export const PLAN_FORMAT_VERSION = 1;

export interface JsonAction {
  cell: string;
  action: Action["kind"];
  reason: string;
  member?: string;
  fields?: string[];
  expiresAt?: string;
  replace?: { from: string; to: string; forces: string[] }; // action "replace": where the cell runs before and after
  brokered?: string[]; // credentials the model gateway holds instead of the cell's members
  // action "stall": how it is handled, which executors, the last evidence (null: none yet)
  stall?: {
    onStall: string;
    members: string[];
    lastEvidenceAt: string | null;
    lastEvidence: string | null;
    stalledForMs: number;
  };
  evidence?: string[]; // action "progress": what is new
}

// Only what a reader needs: never the desired spec (it may name credential sources).
export function actionToJson(a: Action): JsonAction {
  const out: JsonAction = { cell: a.cell, action: a.kind, reason: a.reason };
  if ("member" in a) out.member = a.member;
  if (a.kind === "update") out.fields = a.fields;
  if (a.kind === "renew") out.expiresAt = a.expiresAt;
  if (a.kind === "replace") out.replace = { from: a.from, to: a.to, forces: a.forces };
  const brokered = "desired" in a ? a.desired.gateway?.brokered : undefined;
  if (brokered?.length) out.brokered = [...brokered];
  if (a.kind === "progress") out.evidence = a.evidence;
  if (a.kind === "stall")
    out.stall = {
      onStall: a.onStall,
      members: a.members,
      lastEvidenceAt: a.lastEvidenceAt,
      lastEvidence: a.lastEvidence,
      stalledForMs: a.stalledForMs,
    };
  return out;
}

export function planToJson(p: Plan, diagnostics: Diagnostic[]): unknown {
  return {
    formatVersion: PLAN_FORMAT_VERSION,
    now: p.now,
    actions: p.actions.map(actionToJson),
    held: p.held,
    pending: p.pending,
    diagnostics,
  };
}
