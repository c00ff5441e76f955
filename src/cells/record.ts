// cell.json: what Lazarus observed and did to one cell, written atomically after every change.
import type { BackendName, Role } from "../config/types.js";
import type { CellState } from "./lifecycle.js";

export const RECORD_FORMAT = 1;

export type MemberStatus =
  | "starting" // a spawn is in flight; spawnId finds the process if the recorder crashed
  | "running"
  | "exited"
  | "joined"; // a member without a command: its home is ready

export interface MemberRecord {
  identity: string;
  home: string;
  role: Role;
  command?: string[];
  env: Record<string, string>;
  status: MemberStatus;
  pid?: number;
  startTime?: number; // kernel start time of pid, so a reused pid is not mistaken for the member
  spawnId?: string;
  startedAt?: string;
  exitedAt?: string;
  restarts: number;
  joinedAt: string;
}

export interface CellRecord {
  formatVersion: typeof RECORD_FORMAT;
  uid: string; // one incarnation of the name; a re-created cell gets a new uid
  name: string;
  state: CellState;
  project: string;
  owner: string;
  backend: BackendName;
  labels: Record<string, string>;
  sourceFile: string;
  ttlMs: number;
  graceMs: number;
  retentionMs: number;
  policy: { allowGuests: boolean; allowSubstitutes: boolean };
  credentialsDigest: string; // a digest of the declared sources (never of values)
  createdAt: string;
  activatedAt?: string;
  expiresAt?: string;
  closedAt?: string;
  closeReason?: string;
  closedDigest?: string | null; // desiredDigest() of the declaration when it closed; null when it was removed
  archivedAt?: string;
  members: MemberRecord[];
  updatedAt: string;
}
