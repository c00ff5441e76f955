// Commit-or-abort (spec.progress): the types of a cell's progress clock as recorded
// (.lazarus/progress.json) and as observed. A leaf module: observe, plan, apply and status use it.
import type { OnStall } from "../config/types.js";

export const PROGRESS_FORMAT = 1;

// One artifact as last recorded: inode, size, mtime (ms) and a sha256 of its content (null when
// it was too large or over the hashing budget: then a change of its stat counts as a change).
export type ArtifactPrint = [ino: number, size: number, mtimeMs: number, sha256: string | null];

// A stall handled: when, how, which executors, what the last evidence was then.
export interface StallRecord {
  at: string;
  outcome: OnStall;
  members: string[];
  lastEvidenceAt: string | null;
  lastEvidence: string | null;
  slices: number;
}

// .lazarus/progress.json: written only by Lazarus, atomically. Every time in it is Lazarus's own
// clock when it saw or did something, never a date a member wrote (commit dates, mtimes).
export interface ProgressState {
  formatVersion: typeof PROGRESS_FORMAT;
  since: string; // when the clock started (the cell made, or progress first declared)
  lastEvidenceAt?: string; // when Lazarus first saw the newest evidence
  lastEvidence?: string; // what it was, in words
  handledAt?: string; // the last stall handled: the clock runs again from here
  slices: number; // slices completed: evidence seen (each new commit or artifact change ends one)
  stalls: StallRecord[]; // the newest STALLS_KEPT
  git: string | null; // project/'s refs as `git show-ref --head` printed them (null: not read)
  artifacts: Record<string, ArtifactPrint>; // shared/artifacts/, path relative to it
}

export const STALLS_KEPT = 50;

// What observe found of the cell's evidence now, against what is recorded.
export interface ObservedProgress {
  state?: ProgressState; // undefined: no clock recorded yet
  unreadable?: string; // progress.json could not be read (the clock restarts when recorded again)
  git: string | null; // refs now (null: not read, see notes)
  artifacts: Record<string, ArtifactPrint>; // shared/artifacts/ now (hashes only where needed)
  news: string[]; // evidence not yet recorded, in words ("commit 1a2b3c4 on refs/heads/main")
  notes: string[]; // why a source gave no evidence (a linked .git, too many refs, a capped walk)
}

// The clock of a cell judged for progress, at a time: what plan, status and the metrics show.
export interface ProgressClock {
  sliceMs: number;
  onStall: OnStall;
  from: number; // the clock runs from here (start, last evidence or last handled stall)
  lastEvidenceAt: number | null;
  lastEvidence: string | null;
  stalledForMs: number | null; // past the slice: how long since the clock started; else null
  dueAt: number; // when the slice ends without evidence
  slices: number;
  stalls: number;
  fresh: string[]; // evidence seen now and not yet recorded
}
