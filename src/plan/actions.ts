// The plan is plain data: an ordered list of actions. `kind` drives apply; `reason` is only for people.
import type { DesiredCell, DesiredMember, OnStall } from "../config/types.js";
import { findBackend } from "../backends/table.js";

export const ACTION_KINDS = [
  "create",
  "invite",
  "remove-member",
  "member-down",
  "restart",
  "revoke",
  "update-portfolio",
  "cell-down",
  "revive",
  "disk-full",
  "progress",
  "stall",
  "renew",
  "update",
  "replace",
  "checkpoint",
  "close",
  "resurrect",
  "scrub",
  "purge",
] as const;
export type ActionKind = (typeof ACTION_KINDS)[number];

interface Base {
  cell: string;
  reason: string; // for people; must not influence apply
}

export type Action =
  // restore: a checkpoint (absolute path) to start from (spec.restoreFrom)
  | (Base & { kind: "create"; desired: DesiredCell; resume: boolean; restore?: string })
  // substitute: the member stands in for another; restore: the checkpoint its project/ and shared/ start from
  | (Base & {
      kind: "invite";
      member: string;
      desiredMember: DesiredMember;
      inviteTtlMs: number;
      substitute?: { replaces: string; restore?: string };
    })
  | (Base & { kind: "remove-member"; member: string })
  // A member's process exited or stopped beating; stop: it still runs (hung) and must be stopped.
  | (Base & {
      kind: "member-down";
      member: string;
      status: "down" | "completed" | "exited";
      downAt: string;
      failures: number;
      exitCode: number | null;
      exitReason?: "oom";
      stop: boolean;
    })
  | (Base & { kind: "restart"; member: string; desiredMember: DesiredMember })
  | (Base & { kind: "revoke"; member: string })
  // The member's resolved portfolio changed (or no longer resolves: desiredMember.resolvedPortfolio unset).
  | (Base & {
      kind: "update-portfolio";
      member: string;
      desiredMember: DesiredMember;
      before: string[];
      after: string[];
    })
  | (Base & { kind: "cell-down" })
  | (Base & { kind: "revive" })
  // The cell's disk quota was reached (its members get ENOSPC), or it has room again: recorded
  // and said as an event. avail: bytes members could still write when observed.
  | (Base & { kind: "disk-full"; reached: boolean; avail: number; bytes: number })
  // Evidence of progress seen (spec.progress): recorded with the time Lazarus saw it (start: no
  // clock recorded yet, it starts now). evidence: what is new, in words.
  | (Base & { kind: "progress"; evidence: string[]; start: boolean })
  // No progress for a slice while executors run: handled as onStall says (src/progress/handle.ts).
  // members: the running executors; restore: the checkpoint restart starts them from;
  // substitutes: who stands in for whom (onStall substitute; executors without one are restarted).
  | (Base & {
      kind: "stall";
      onStall: OnStall;
      members: string[];
      lastEvidenceAt: string | null;
      lastEvidence: string | null;
      stalledForMs: number;
      slices: number;
      restore?: string;
      substitutes: { member: string; desiredMember: DesiredMember; replaces: string; restore?: string }[];
      inviteTtlMs: number;
    })
  | (Base & { kind: "checkpoint"; trigger: "schedule" | "close" | "resume" })
  | (Base & { kind: "renew"; ttlMs: number; expiresAt: string })
  | (Base & { kind: "update"; desired: DesiredCell; fields: string[] })
  // Where the cell runs changes (backend, container image): checkpoint, stop and release on the
  // old backend, lay out and restore on the new one, start members there. forces: the fields that
  // force it; from/to: where it runs before and after (e.g. "process", "container localhost/a:1");
  // resume: a replacement a killed run left half done (cell.json has replacing).
  | (Base & { kind: "replace"; desired: DesiredCell; from: string; to: string; forces: string[]; resume: boolean })
  // desiredDigest: the declaration in force when it closed (null when removed); it reopens only when that changes.
  | (Base & { kind: "close"; closeReason: string; desiredDigest: string | null })
  | (Base & { kind: "resurrect"; desired: DesiredCell })
  // interrupted: only finish what a killed scrub moved aside (graveyard/.scrubbing-<cell>~<id>),
  // never graveyard/<cell> itself
  | (Base & { kind: "scrub"; interrupted?: true })
  | (Base & { kind: "purge"; dir: string });

// The actions that keep members supervised: a member noticed down, restarted, its cell downed or
// revived. The daemon applies only these while the ledger's last time is ahead of the clock;
// everything else (a ttl, grace, retention, invitation or downed timeout ending, a scheduled
// checkpoint, a create stamped with its activation, …) waits until the clock passes that time.
export const SUPERVISION: ReadonlySet<ActionKind> = new Set<ActionKind>([
  "member-down",
  "restart",
  "cell-down",
  "revive",
]);

// Where a cell runs, in a word or two: "process", "sandbox", "container localhost/agent:1" (its
// backend says).
export function placeOf(backend: string, container?: { image: string } | undefined): string {
  return findBackend(backend)?.place?.({ container }) ?? backend;
}

// Something the plan is waiting for (a restart backoff, a downed timeout): shown, not applied.
export interface Pending {
  cell: string;
  member?: string;
  reason: string;
}

// Terraform-style symbols for the text view.
export const SYMBOLS: Readonly<Record<ActionKind, string>> = {
  create: "+",
  invite: "+",
  "remove-member": "-",
  "member-down": "!",
  restart: "±",
  revoke: "-",
  "update-portfolio": "~",
  "cell-down": "!",
  revive: "+",
  "disk-full": "!",
  progress: "*",
  stall: "!",
  checkpoint: "*",
  renew: "~",
  update: "~",
  replace: "-/+",
  close: "-",
  resurrect: "↺",
  scrub: "✗",
  purge: "✗",
};
