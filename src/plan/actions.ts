// The plan is plain data: an ordered list of actions. `kind` drives apply; `reason` is only for people.
import type { DesiredCell, DesiredMember } from "../config/types.js";

export const ACTION_KINDS = [
  "create",
  "invite",
  "remove-member",
  "restart",
  "renew",
  "update",
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
  | (Base & { kind: "create"; desired: DesiredCell; resume: boolean })
  | (Base & { kind: "invite"; member: string; desiredMember: DesiredMember })
  | (Base & { kind: "remove-member"; member: string })
  | (Base & { kind: "restart"; member: string; desiredMember: DesiredMember })
  | (Base & { kind: "renew"; ttlMs: number; expiresAt: string })
  | (Base & { kind: "update"; desired: DesiredCell; fields: string[] })
  // desiredDigest: the declaration in force when it closed (null when removed); it reopens only when that changes.
  | (Base & { kind: "close"; closeReason: string; desiredDigest: string | null })
  | (Base & { kind: "resurrect"; desired: DesiredCell })
  | (Base & { kind: "scrub" })
  | (Base & { kind: "purge"; dir: string });

// Terraform-style symbols for the text view.
export const SYMBOLS: Readonly<Record<ActionKind, string>> = {
  create: "+",
  invite: "+",
  "remove-member": "-",
  restart: "±",
  renew: "~",
  update: "~",
  close: "-",
  resurrect: "↺",
  scrub: "✗",
  purge: "✗",
};
