// Working the outbox: each due entry is posted, or its comment found by marker and edited; the
// comment id is saved in the entry, then recorded in the ledger. A transient failure (5xx, 429, a
// rate limit, the network) waits and tries again (doubling from 0.5 s, at most 10 min, never before
// a Retry-After); a permanent one (401, 403, 404, a missing token) marks the entry failed and
// records a publish-failed event. Nothing here fails a cell or an apply.
import { setTimeout as sleep } from "node:timers/promises";
import path from "node:path";
import type { Ledger } from "../ledger/ledger.js";
import type { HostSettings } from "../host/settings.js";
import { secretPath, SECRET_MAX_BYTES } from "../host/secrets.js";
import { readUntrusted } from "../util/safe-fs.js";
import { errorMessage } from "../util/errors.js";
import { failpoint } from "../util/failpoint.js";
import { forgeClient, ForgeError } from "./client.js";
import { hasMarker } from "./render.js";
import { digest, readEntries, saveEntry, type OutboxEntry } from "./outbox.js";
import { publicationOf, type Forge } from "./table.js";

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_MAX_MS = 10 * 60_000;

export interface WorkOptions {
  stateRoot: string;
  forges: Forge[];
  host: HostSettings;
  ledger: Ledger;
  budgetMs: number; // keep waiting for due retries this long (0: one pass)
  retryFailed?: boolean; // try entries that failed for good once more (lazarus publish)
  clock?: () => number;
  ledgerTime?: number; // the run's time: ledger entries are never stamped earlier
  fetchImpl?: typeof fetch;
}

const stampOf = (o: WorkOptions): string =>
  new Date(Math.max(o.ledgerTime ?? 0, (o.clock ?? Date.now)())).toISOString();

export interface WorkReport {
  posted: number;
  failed: number;
  pending: number;
}

export function backoffMs(attempts: number, retryAfter?: number): number {
  const b = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, attempts - 1));
  return Math.max(b, retryAfter ?? 0);
}

export async function readToken(forge: Forge, host: HostSettings): Promise<string> {
  const p = await secretPath(forge.tokenFile as string, host, "forge tokens", "gitea/token");
  if (!p.ok) throw new ForgeError(`tokenFile ${forge.tokenFile}: ${p.message} (${p.hint})`, true);
  const r = await readUntrusted(p.path, SECRET_MAX_BYTES);
  if (!r.ok) throw new ForgeError(`tokenFile ${forge.tokenFile} under the secrets root ${r.reason}`, true);
  const token = r.text.trim();
  if (!token) throw new ForgeError(`tokenFile ${forge.tokenFile} under the secrets root is empty`, true);
  return token;
}

// Post (or find and edit) one entry's comment; returns the comment id and what was done.
async function publishOne(e: OutboxEntry, o: WorkOptions): Promise<{ id: number; did: string; where: string }> {
  const pub = publicationOf(o.forges, e.project);
  if (!pub.publishes) throw new ForgeError(pub.why, true);
  const client = forgeClient(pub.forge.kind, pub.forge.url, await readToken(pub.forge, o.host), o.fetchImpl);
  failpoint("publish:before-post");
  let id = e.commentId;
  let did: string;
  if (id === undefined) {
    const found = (await client.list(pub.issue)).find((c) => hasMarker(c.body, e.kind, e.cell, e.life));
    if (found) {
      id = found.id;
      did = found.body === e.body ? "found" : "edited";
      if (found.body !== e.body) await client.edit(pub.issue, id, e.body);
    } else {
      id = (await client.create(pub.issue, e.body)).id;
      did = "posted";
    }
  } else {
    await client.edit(pub.issue, id, e.body);
    did = "edited";
  }
  failpoint("publish:posted");
  return { id, did, where: pub.where };
}

async function record(e: OutboxEntry, o: WorkOptions, did: string, where: string): Promise<void> {
  await o.ledger.append({
    time: stampOf(o),
    cell: e.cell,
    action: "publish",
    reason: `${e.kind} comment ${did} on ${where}`,
    details: { kind: e.kind, incarnation: e.life, commentId: e.commentId, project: e.project },
  });
  await saveEntry(o.stateRoot, { ...e, recorded: true });
}

// One entry, due now: its outcome saved to its file (and the ledger).
async function workOne(e: OutboxEntry, o: WorkOptions, now: number): Promise<"posted" | "failed" | "pending"> {
  const stamp = new Date(now).toISOString();
  try {
    const r = await publishOne(e, o);
    const done: OutboxEntry = {
      ...e,
      status: "done",
      commentId: r.id,
      posted: digest(e.body),
      recorded: false,
      attempts: e.attempts + 1,
      updatedAt: stamp,
    };
    delete done.nextAt;
    delete done.lastError;
    await saveEntry(o.stateRoot, done);
    failpoint("publish:saved");
    await record(done, o, r.did, r.where);
    return "posted";
  } catch (err) {
    const permanent = err instanceof ForgeError ? err.permanent : false;
    const message = errorMessage(err);
    const attempts = e.attempts + 1;
    if (permanent) {
      await saveEntry(o.stateRoot, { ...e, status: "failed", attempts, lastError: message, updatedAt: stamp });
      await o.ledger.append({
        time: stampOf(o),
        cell: e.cell,
        action: "publish-failed",
        reason: `${e.kind} comment not published (not retried; lazarus publish tries again): ${message}`,
        details: { kind: e.kind, incarnation: e.life, project: e.project },
      });
      return "failed";
    }
    const wait = backoffMs(attempts, err instanceof ForgeError ? err.retryAfterMs : undefined);
    await saveEntry(o.stateRoot, {
      ...e,
      attempts,
      lastError: message,
      nextAt: new Date((o.clock ?? Date.now)() + wait).toISOString(), // from the answer, not the request
      updatedAt: stamp,
    });
    return "pending";
  }
}

// The entries to work now, each incarnation's spawn comment before its close comment: a close
// waits while its spawn comment still waits to be retried (so the issue reads in order).
export function dueEntries(entries: OutboxEntry[], now: number, retryFailed: boolean): OutboxEntry[] {
  const waiting = (e: OutboxEntry) => e.status === "pending" || (retryFailed && e.status === "failed");
  const spawnWaits = new Set(
    entries.filter((e) => e.kind === "spawn" && e.status === "pending").map((e) => `${e.cell}.${e.life}`),
  );
  return entries
    .filter((e) => waiting(e) && (!e.nextAt || Date.parse(e.nextAt) <= now))
    .filter((e) => e.kind === "spawn" || !spawnWaits.has(`${e.cell}.${e.life}`) || isDue(entries, e, now))
    .sort(
      (a, b) => a.queuedAt.localeCompare(b.queuedAt) || (a.kind === "spawn" ? -1 : 1) - (b.kind === "spawn" ? -1 : 1),
    );
}

// Whether this close's spawn comment is due now too (then it goes first, in the same pass).
function isDue(entries: OutboxEntry[], close: OutboxEntry, now: number): boolean {
  const spawn = entries.find((e) => e.kind === "spawn" && e.cell === close.cell && e.life === close.life);
  return !spawn?.nextAt || Date.parse(spawn.nextAt) <= now;
}

// Work every due entry; then, while the budget lasts, wait for the next retry and work again.
export async function workOutbox(o: WorkOptions): Promise<WorkReport> {
  const clock = o.clock ?? Date.now;
  const deadline = clock() + o.budgetMs;
  const report: WorkReport = { posted: 0, failed: 0, pending: 0 };
  let first = true;
  for (;;) {
    const entries = await readEntries(o.stateRoot);
    // Posted but not yet in the ledger (a run stopped in between): recorded now.
    for (const e of entries.filter((x) => x.status === "done" && x.recorded === false))
      await record(e, o, "recorded after an interruption", e.project);
    const now = clock();
    const due = dueEntries(entries, now, first && o.retryFailed === true);
    first = false;
    const spawnWaits = new Set<string>(); // incarnations whose spawn comment must be retried first
    for (const e of due) {
      if (e.kind === "close" && spawnWaits.has(`${e.cell}.${e.life}`)) continue;
      const r = await workOne({ ...e, status: "pending" }, o, clock());
      if (r === "pending" && e.kind === "spawn") spawnWaits.add(`${e.cell}.${e.life}`);
      if (r !== "pending") report[r]++;
    }
    const left = (await readEntries(o.stateRoot)).filter((e) => e.status === "pending");
    report.pending = left.length;
    const next = Math.min(...left.map((e) => (e.nextAt ? Date.parse(e.nextAt) : clock())));
    if (left.length === 0 || next > deadline) return report;
    await sleep(Math.max(0, next - clock()));
  }
}

export const outboxLockFile = (stateRoot: string): string => path.join(stateRoot, "outbox.lock");
