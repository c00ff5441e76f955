// What GitOps has done: the revision in force, the last one attempted and how it went, and a
// revision held by the deletion budget. Kept in <state>/gitops/status.json, written atomically.
import path from "node:path";
import type { Diagnostic } from "../config/diagnostics.js";
import { readJson, writeJsonAtomic } from "../util/fsx.js";

export type Outcome = "applied" | "unchanged" | "rejected" | "held" | "failed";

export interface GitopsStatus {
  repo: string;
  ref: string;
  path?: string;
  inForce?: { revision: string; subject: string; at: string };
  lastAttempt?: {
    revision: string;
    subject: string;
    at: string;
    outcome: Outcome;
    detail?: string;
    diagnostics?: Diagnostic[];
  };
  held?: { revision: string; closes: string[]; reason: string; at: string };
}

export function gitopsDir(stateRoot: string): string {
  return path.join(stateRoot, "gitops");
}

export function readGitopsStatus(stateRoot: string): Promise<GitopsStatus | undefined> {
  return readJson<GitopsStatus>(path.join(gitopsDir(stateRoot), "status.json"));
}

export function writeGitopsStatus(stateRoot: string, s: GitopsStatus): Promise<void> {
  return writeJsonAtomic(path.join(gitopsDir(stateRoot), "status.json"), s);
}
