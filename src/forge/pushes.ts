// The cells' pushes: what to push, read afresh from the cells' own files each time (level-triggered,
// like the comments), journaled in the outbox as <cell>.<incarnation>.push.json. A cell that
// declares spec.push, on a backend whose project/ is on this host, with a forge row that pushes,
// is pushed once per checkpoint it takes and once at close (the trigger: the newest checkpoint's
// name, or "close"); the entry says what was pushed (the SHA), where, and how it went. A crash at
// any point converges: the push runs again, and pushing a commit the forge already has is a no-op.
import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { cellPaths, type StatePaths } from "../cells/layout.js";
import type { Ledger } from "../ledger/ledger.js";
import type { HostSettings } from "../host/settings.js";
import { listCheckpoints } from "../checkpoints/list.js";
import { writeJsonAtomic } from "../util/fsx.js";
import { errorMessage, isErrno } from "../util/errors.js";
import { failpoint } from "../util/failpoint.js";
import { readdir } from "node:fs/promises";
import { lifeOf, records } from "./queue.js";
import { pushTargetOf, type Forge, type PushTarget } from "./table.js";
import { pushOf } from "./push-of.js";
import { branchRefusal, branchTip, pushBranch, PushError, type PushFailure } from "./git-push.js";
import { backoffMs, readToken } from "./worker.js";
import { outboxDir } from "./outbox.js";
import type { PushFacts } from "./render.js";

export { pushOf, pushWords } from "./push-of.js";

export type PushStatus = "pending" | "done" | "failed" | "rejected";

export interface PushEntry {
  cell: string;
  life: string;
  project: string; // spec.project (Org/repo#N): the forge row is found from it
  branch: string;
  tree: string; // the cell's project/ on this host
  trigger: string; // the checkpoint (or "close") this push is for
  status: PushStatus;
  url?: string; // where it was (or is to be) pushed
  pushing?: string; // the commit being pushed (journal: set before the push)
  sha?: string; // the commit last pushed
  pushedAt?: string;
  result?: string; // new branch, updated, up to date, nothing to push
  recorded?: boolean; // the ledger holds the push (false: recorded at the next pass)
  attempts: number;
  nextAt?: string;
  lastError?: string;
  queuedAt: string;
  updatedAt: string;
}

export const pushEntryName = (cell: string, life: string): string => `${cell}.${life}.push.json`;
export const pushRepo = (stateRoot: string, cell: string, life: string): string =>
  path.join(outboxDir(stateRoot), "repos", `${cell}.${life}.git`);

export async function readPushEntries(stateRoot: string): Promise<PushEntry[]> {
  const dir = outboxDir(stateRoot);
  const names = await readdir(dir).catch((err: unknown) => {
    if (isErrno(err, "ENOENT")) return [] as string[];
    throw err;
  });
  const out: PushEntry[] = [];
  for (const n of names.filter((x) => x.endsWith(".push.json")).sort()) {
    const text = await readFile(path.join(dir, n), "utf8").catch(() => undefined);
    try {
      const e = text ? (JSON.parse(text) as PushEntry) : undefined;
      if (e && typeof e.cell === "string" && typeof e.branch === "string" && typeof e.trigger === "string") out.push(e);
    } catch {
      // a torn file cannot be: entries are written atomically; an unreadable one is queued again
    }
  }
  return out;
}

const saveEntry = (stateRoot: string, e: PushEntry): Promise<void> =>
  writeJsonAtomic(path.join(outboxDir(stateRoot), pushEntryName(e.cell, e.life)), e, 0o600);

async function dropEntry(stateRoot: string, e: PushEntry): Promise<void> {
  await rm(pushRepo(stateRoot, e.cell, e.life), { recursive: true, force: true });
  await rm(path.join(outboxDir(stateRoot), pushEntryName(e.cell, e.life)), { force: true });
}

export interface WantedPush {
  cell: string;
  life: string;
  project: string;
  branch: string;
  tree: string;
  trigger?: string; // undefined: nothing to push yet (no checkpoint taken)
  target: PushTarget;
}

const LIVE = new Set(["active", "downed", "checkpointing"]);

// Every push the cells' files call for now: live cells at their newest checkpoint, closed ones once.
export async function wantedPushes(paths: StatePaths, forges: Forge[], only?: string): Promise<WantedPush[]> {
  const out: WantedPush[] = [];
  for (const [dir, live] of [
    [paths.cells, true],
    [paths.graveyard, false],
  ] as const) {
    for (const { dir: cellDir, rec } of await records(dir)) {
      if (only !== undefined && rec.name !== only) continue;
      if (live ? !LIVE.has(rec.state) : rec.state !== "closed") continue;
      const p = pushOf(rec, forges);
      if (!p) continue;
      const cp = cellPaths(cellDir);
      const trigger = live ? (await listCheckpoints(cp.checkpoints)).at(-1)?.name : "close";
      out.push({
        cell: rec.name,
        life: lifeOf(rec),
        project: rec.project,
        branch: p.branch,
        tree: cp.project,
        ...(trigger ? { trigger } : {}),
        target: p.target,
      });
    }
  }
  return out;
}

// Queue what the cells call for (a new trigger makes the entry pending again) and drop entries of
// incarnations that no longer push. Returns the entries as they now are.
export async function queuePushes(
  stateRoot: string,
  paths: StatePaths,
  forges: Forge[],
  now: string,
): Promise<PushEntry[]> {
  const entries = new Map((await readPushEntries(stateRoot)).map((e) => [`${e.cell}.${e.life}`, e]));
  const keep = new Set<string>();
  for (const w of await wantedPushes(paths, forges)) {
    const key = `${w.cell}.${w.life}`;
    keep.add(key);
    const old = entries.get(key);
    if (!w.target.pushes || !w.trigger) continue;
    if (old && old.trigger === w.trigger && old.branch === w.branch && old.tree === w.tree) continue;
    const base = old ?? { cell: w.cell, life: w.life, queuedAt: now };
    const e: PushEntry = {
      ...base,
      project: w.project,
      branch: w.branch,
      tree: w.tree,
      trigger: w.trigger,
      url: w.target.url,
      status: "pending",
      attempts: 0,
      updatedAt: now,
    } as PushEntry;
    delete e.nextAt;
    await saveEntry(stateRoot, e);
    failpoint("push:queued");
    entries.set(key, e);
  }
  for (const [key, e] of entries) {
    if (keep.has(key) || e.recorded === false) continue;
    await dropEntry(stateRoot, e);
    entries.delete(key);
  }
  return [...entries.values()];
}

export interface PushWork {
  stateRoot: string;
  forges: Forge[];
  host: HostSettings;
  ledger: Ledger;
  ledgerTime: number;
  retryFailed?: boolean; // rejected and failed entries once more (lazarus publish)
}

export interface PushReport {
  pushed: number;
  rejected: number; // the forge refused the update (never forced)
  failed: number; // for good (not retried before the next checkpoint)
  retried: number; // failed for a passing reason this pass: tried again after its backoff
  pending: number; // not due yet (waiting for its backoff)
}

const stampOf = (o: PushWork): string => new Date(Math.max(o.ledgerTime, Date.now())).toISOString();

async function record(e: PushEntry, o: PushWork): Promise<void> {
  const when = e.trigger === "close" ? "at close" : `checkpoint ${e.trigger}`;
  await o.ledger.append({
    time: stampOf(o),
    cell: e.cell,
    action: "push",
    reason: e.sha
      ? `${e.branch} at ${e.sha.slice(0, 12)} pushed to ${e.url ?? "?"} (${e.result ?? "pushed"}; ${when})`
      : `nothing pushed to ${e.url ?? "?"} (${e.result ?? "no commit"}; ${when})`,
    details: {
      branch: e.branch,
      sha: e.sha ?? null,
      url: e.url,
      result: e.result,
      incarnation: e.life,
      trigger: e.trigger,
    },
  });
  await saveEntry(o.stateRoot, { ...e, recorded: true });
}

// Push one entry: the branch's commit now, measured, fetched into Lazarus's repository, pushed.
async function pushOne(e: PushEntry, o: PushWork): Promise<PushEntry> {
  const target = pushTargetOf(o.forges, e.project, e.branch);
  if (!target.pushes) throw new PushError(target.why, "permanent");
  const refused = await branchRefusal(e.tree, e.branch);
  if (refused) throw new PushError(`not pushed: ${refused}`, "permanent");
  const sha = await branchTip(e.tree, e.branch);
  if (!sha) return { ...e, url: target.url, result: `nothing to push: project/ has no branch ${e.branch}` };
  await saveEntry(o.stateRoot, { ...e, url: target.url, pushing: sha });
  failpoint("push:before-push");
  const token = await readToken(target.forge, o.host).catch((err: unknown) => {
    throw new PushError(errorMessage(err), "permanent");
  });
  const r = await pushBranch({
    repo: pushRepo(o.stateRoot, e.cell, e.life),
    project: e.tree,
    branch: e.branch,
    sha,
    url: target.url,
    token,
  });
  failpoint("push:pushed");
  return { ...e, url: target.url, sha, result: r.result };
}

const EVENT: Record<Exclude<PushFailure, "transient">, string> = {
  rejected: "push-rejected",
  permanent: "push-failed",
};

// One entry, due now: its outcome saved to its file (and the ledger).
async function workOne(e: PushEntry, o: PushWork, now: number): Promise<keyof PushReport> {
  const stamp = new Date(now).toISOString();
  const attempts = e.attempts + 1;
  try {
    const r = await pushOne(e, o);
    const done: PushEntry = { ...r, status: "done", pushedAt: stamp, recorded: false, attempts, updatedAt: stamp };
    delete done.pushing;
    delete done.nextAt;
    delete done.lastError;
    await saveEntry(o.stateRoot, done);
    failpoint("push:saved");
    await record(done, o);
    return "pushed";
  } catch (err) {
    const failure = err instanceof PushError ? err.failure : "transient";
    const message = errorMessage(err);
    if (failure === "transient") {
      const nextAt = new Date(Date.now() + backoffMs(attempts)).toISOString(); // from the answer
      await saveEntry(o.stateRoot, { ...e, attempts, lastError: message, nextAt, updatedAt: stamp });
      return "retried";
    }
    const when = e.trigger === "close" ? "at close" : `checkpoint ${e.trigger}`;
    await saveEntry(o.stateRoot, {
      ...e,
      status: failure === "rejected" ? "rejected" : "failed",
      attempts,
      lastError: message,
      updatedAt: stamp,
    });
    await o.ledger.append({
      time: stampOf(o),
      cell: e.cell,
      action: EVENT[failure],
      reason: `${e.branch} not pushed (${when}; not retried before the next checkpoint): ${message}`,
      details: { branch: e.branch, url: e.url, incarnation: e.life, trigger: e.trigger },
    });
    return failure === "rejected" ? "rejected" : "failed";
  }
}

// One pass over the due entries (what waits is tried again at a later pass, after its backoff).
export async function workPushes(o: PushWork): Promise<PushReport> {
  const report: PushReport = { pushed: 0, rejected: 0, failed: 0, retried: 0, pending: 0 };
  const entries = await readPushEntries(o.stateRoot);
  for (const e of entries.filter((x) => x.status === "done" && x.recorded === false)) await record(e, o);
  const now = Date.now();
  const again = (e: PushEntry) => o.retryFailed === true && (e.status === "failed" || e.status === "rejected");
  for (const e of entries) {
    if (!(e.status === "pending" || again(e))) continue;
    if (e.status === "pending" && e.nextAt && Date.parse(e.nextAt) > now) {
      report.pending++;
      continue;
    }
    report[await workOne({ ...e, status: "pending" }, o, Date.now())]++;
  }
  return report;
}

// What the close comment says about the incarnation's push, by `${cell}.${life}`.
export function pushFacts(entries: PushEntry[]): Map<string, PushFacts> {
  const out = new Map<string, PushFacts>();
  for (const e of entries) {
    const state =
      e.status === "done"
        ? e.sha
          ? "pushed"
          : "nothing to push"
        : e.status === "pending"
          ? "waiting"
          : e.status === "rejected"
            ? "rejected (not forced)"
            : "failed";
    out.set(`${e.cell}.${e.life}`, {
      branch: e.branch,
      url: e.url ?? "",
      state,
      ...(e.sha ? { sha: e.sha } : {}),
      ...(e.trigger === "close" ? { atClose: true } : {}),
    });
  }
  return out;
}
