// What lazarus verify reports: one check of an invariant (spec §2), for a cell or one member.
// A leaf module: backends say here what they do and do not enforce.
export const INVARIANTS = ["I1", "I2", "I3", "I4", "I5", "I6"] as const;
export type Invariant = (typeof INVARIANTS)[number];

export interface Check {
  invariant: Invariant;
  check: string;
  member?: string;
  ok: boolean;
  detail: string;
}

export interface CellReport {
  name: string;
  backend: string;
  checks: Check[];
}
