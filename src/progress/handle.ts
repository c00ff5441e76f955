// Applying commit-or-abort (spec.progress): evidence recorded with the time Lazarus saw it, and a
// stall handled as onStall says, through the paths members already take (a restore from the last
// checkpoint and a restart, a substitute's invitation, a stop). Each writes progress.json
// atomically and returns its details for the ledger; a stall is also a decision of the cell.
import path from "node:path";
import type { CellPaths } from "../cells/layout.js";
import type { CellRecord, MemberRecord } from "../cells/record.js";
import type { Action } from "../plan/actions.js";
import { listCheckpoints } from "../checkpoints/list.js";
import { rotateCheckpoints } from "../checkpoints/checkpoint.js";
import { LIMITS } from "../config/types.js";
import { memberRef } from "../backends/backend.js";
import { LazarusError } from "../util/errors.js";
import { checkpointCell } from "../apply/checkpoint.js";
import {
  backendOf,
  decide,
  iso,
  liveCell,
  loadRecord,
  saveRecord,
  type ApplyEnv,
  type Details,
} from "../apply/context.js";
import { invite, startMember, stopMember } from "../apply/members.js";
import { restoreReplacing } from "../apply/restore.js";
import { observeProgress, readProgress, startState, writeProgress } from "./state.js";
import { STALLS_KEPT, type ProgressState } from "./types.js";

type ProgressAction = Extract<Action, { kind: "progress" }>;
type StallAction = Extract<Action, { kind: "stall" }>;

// Record what is new now (looked at again: anything since the plan is seen now too), or start the
// clock when none is recorded.
export async function recordProgress(a: ProgressAction, env: ApplyEnv): Promise<Details> {
  const cp = liveCell(env, a.cell);
  const o = await observeProgress(cp);
  if (!o.state) {
    await writeProgress(cp, startState(o, iso(env.now)));
    return { started: iso(env.now) };
  }
  const s: ProgressState = {
    ...o.state,
    git: o.git ?? o.state.git, // refs not read this time (a timeout): the recorded ones stay
    artifacts: o.artifacts,
  };
  if (o.news.length > 0) {
    s.lastEvidenceAt = iso(env.now);
    s.lastEvidence = o.news.slice(0, 10).join(", ") + (o.news.length > 10 ? ` and ${o.news.length - 10} more` : "");
    s.slices += 1;
  }
  await writeProgress(cp, s);
  return { evidence: o.news, seenAt: o.news.length > 0 ? iso(env.now) : null, slices: s.slices };
}

// Handle a stall: the executors are dealt with, then the stall is recorded and the clock runs again
// from now (a restart is not repeated at every reconcile).
export async function handleStall(a: StallAction, env: ApplyEnv): Promise<Details> {
  const cp = liveCell(env, a.cell);
  const state = await readProgress(cp);
  if (!state)
    throw new LazarusError("PROGRESS_MISSING", `cell ${a.cell} has no progress clock; the next plan starts it`);
  const details: Details = {
    onStall: a.onStall,
    members: a.members,
    lastEvidenceAt: a.lastEvidenceAt,
    lastEvidence: a.lastEvidence,
    stalledForMs: a.stalledForMs,
    slices: a.slices,
  };
  switch (a.onStall) {
    case "restart":
      Object.assign(details, await restartFrom(cp, a.members, a.restore, env));
      break;
    case "substitute":
      Object.assign(details, await substitute(cp, a, env));
      break;
    case "abort":
      await stopStalled(cp, a.members, "abort", env);
      break;
    case "notify":
      break;
  }
  const now = iso(env.now);
  state.handledAt = now;
  state.stalls = [
    ...state.stalls,
    {
      at: now,
      outcome: a.onStall,
      members: a.members,
      lastEvidenceAt: a.lastEvidenceAt,
      lastEvidence: a.lastEvidence,
      slices: a.slices,
    },
  ].slice(-STALLS_KEPT);
  await writeProgress(cp, state);
  await decide(cp, env, { decision: "stall", reason: a.reason, ...details });
  return details;
}

// Stop these members and keep them stopped for the stall (see benched in src/plan/members.ts).
async function stopStalled(
  cp: CellPaths,
  ids: string[],
  outcome: "abort" | "substitute",
  env: ApplyEnv,
): Promise<void> {
  const rec = await loadRecord(cp);
  for (const m of members(rec, ids)) {
    await stopMember(rec, m, env);
    m.status = outcome === "abort" ? "exited" : "down";
    m.downAt = iso(env.now);
    m.exitedAt = iso(env.now);
    m.exitCode = null;
    m.stalled = { at: iso(env.now), outcome };
  }
  await saveRecord(cp, rec, env);
}

const members = (rec: CellRecord, ids: string[]): MemberRecord[] =>
  rec.members.filter((m) => ids.includes(m.identity) && m.command);

// Stop them, restore project/ and shared/ from the checkpoint (a safety checkpoint of the current
// ones first, as for a substitute; only when no other executor runs), start them again.
async function restartFrom(cp: CellPaths, ids: string[], source: string | undefined, env: ApplyEnv): Promise<Details> {
  let rec = await loadRecord(cp);
  const backend = backendOf(env, rec);
  for (const m of members(rec, ids)) await stopMember(rec, m, env);
  await saveRecord(cp, rec, env);
  const out: Details = { restarted: ids };
  const others = rec.members.filter(
    (m) => m.command && !ids.includes(m.identity) && backend.isAlive(memberRef(rec.name, m)),
  );
  if (source && others.length > 0) out.restoreSkipped = `${others.map((m) => m.identity).join(", ")} still running`;
  else if (source && (await listCheckpoints(cp.checkpoints)).some((c) => c.file === source)) {
    out.safetyCheckpoint = await checkpointCell(
      cp,
      rec,
      `before ${ids.join(", ")} restart for no progress`,
      env,
      source,
    );
    rec = await loadRecord(cp);
    await restoreReplacing(backendOf(env, rec), rec, cp.dir, source, ["project", "shared"]);
    await rotateCheckpoints(cp.checkpoints, rec.checkpointKeep ?? LIMITS.defaultKeep);
    out.restoredFrom = path.basename(source);
  } else if (source) out.restoreSkipped = `checkpoint ${path.basename(source)} is gone`;
  for (const m of members(rec, ids)) {
    m.restarts += 1;
    await startMember(cp, rec, m, env);
  }
  await saveRecord(cp, rec, env);
  return out;
}

// Each stalled executor with a substitute: stopped and kept stopped, its substitute invited as
// when it is down (from the last checkpoint). The others are restarted as they are.
async function substitute(cp: CellPaths, a: StallAction, env: ApplyEnv): Promise<Details> {
  const replaced = a.substitutes.map((s) => s.replaces);
  await stopStalled(cp, replaced, "substitute", env);
  const summoned: Details[] = [];
  for (const s of a.substitutes) {
    summoned.push(
      await invite(
        {
          kind: "invite",
          cell: a.cell,
          member: s.member,
          desiredMember: s.desiredMember,
          inviteTtlMs: a.inviteTtlMs,
          substitute: { replaces: s.replaces, ...(s.restore ? { restore: s.restore } : {}) },
          reason: `substitute ${s.member} stands in for ${s.replaces}, stopped for no progress`,
        },
        env,
      ),
    );
  }
  const rest = a.members.filter((m) => !replaced.includes(m));
  const restarted = rest.length > 0 ? await restartFrom(cp, rest, undefined, env) : {};
  return { summoned, ...restarted };
}

// What the close log keeps of the cell's progress: slices completed, the last evidence, each stall.
export async function progressForCloseLog(cp: CellPaths): Promise<{ progress?: Details }> {
  const s = await readProgress(cp).catch(() => undefined);
  if (!s) return {};
  return {
    progress: {
      slices: s.slices,
      lastEvidenceAt: s.lastEvidenceAt ?? null,
      lastEvidence: s.lastEvidence ?? null,
      stalls: s.stalls,
    },
  };
}
