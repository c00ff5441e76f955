// lazarus publish [CELL]: work the forge outbox now (failed entries tried once more), or with
// --dry-run print the comments the cells call for and where they would go, touching nothing.
import path from "node:path";
import { Command } from "commander";
import { statePaths } from "../cells/layout.js";
import { engineOptions, err, out, action, withCommon, withLockTimeout, type CommonOpts } from "./common.js";
import { resolveNow, withCells } from "../engine.js";
import { hostSettings } from "../host/settings.js";
import { forgeTable } from "../forge/table.js";
import { readEntries, type OutboxEntry } from "../forge/outbox.js";
import { wantedComments, type Wanted } from "../forge/queue.js";
import { render } from "../forge/render.js";
import { publishComments, publishLine } from "../forge/publish.js";
import { LazarusError } from "../util/errors.js";
import { readPushEntries, wantedPushes, type PushEntry, type WantedPush } from "../forge/pushes.js";

const PUBLISH_BUDGET_MS = 60_000;

interface PublishOpts extends CommonOpts {
  dryRun?: boolean;
  json?: boolean;
  now?: string;
}

export function publishCommand(): Command {
  return withLockTimeout(withCommon(new Command("publish")))
    .description("post the cells' spawn and close comments on their project's issue (see docs/forges.md)")
    .argument("[cell]", "only this cell's comments (with --dry-run)")
    .option("--dry-run", "print the comments that would be posted and where, and change nothing")
    .option("--json", "with --dry-run: the comments as JSON")
    .option("--now <time>", "as of this ISO-8601 time (when a member is seen to have left)")
    .action(action(async (cell: string | undefined, o: PublishOpts) => (o.dryRun ? dryRun(cell, o) : publish(o))));
}

// What would happen to one wanted comment, given the outbox.
function plannedStep(w: Wanted, entry: OutboxEntry | undefined, body: string): string {
  if (!w.publication.publishes) return w.publication.why;
  if (!entry) return `would post on ${w.publication.where}`;
  if (entry.status === "failed")
    return `failed for good (${entry.lastError ?? "unknown"}); lazarus publish tries again`;
  if (entry.commentId !== undefined && entry.body === body && entry.status === "done")
    return `published as comment ${entry.commentId} on ${w.publication.where}`;
  if (entry.commentId !== undefined) return `would edit comment ${entry.commentId} on ${w.publication.where}`;
  return `would post on ${w.publication.where} (queued, ${entry.attempts} attempt(s) so far)`;
}

// What would happen to one cell's push, given its outbox entry.
function plannedPush(w: WantedPush, e: PushEntry | undefined): string {
  if (!w.target.pushes) return w.target.why;
  const where = `${w.branch} to ${w.target.url}`;
  if (!w.trigger) return `would push ${where} at its first checkpoint (none taken yet) or at close`;
  const at = w.trigger === "close" ? "at close" : `for checkpoint ${w.trigger}`;
  const last = e?.sha ? `; last pushed ${e.sha.slice(0, 12)}` : "";
  if (!e || e.trigger !== w.trigger || e.branch !== w.branch) return `would push ${where} ${at}${last}`;
  if (e.status === "done")
    return e.sha ? `pushed ${where} at ${e.sha.slice(0, 12)} ${at}` : `${e.result ?? "done"} ${at}`;
  if (e.status === "pending") return `would push ${where} ${at} (queued, ${e.attempts} attempt(s) so far)${last}`;
  return `${e.status} ${at} (${e.lastError ?? "unknown"}); lazarus publish tries again${last}`;
}

async function dryRun(cell: string | undefined, o: PublishOpts): Promise<number> {
  if (o.json === true && !o.dryRun) throw new LazarusError("BAD_FLAG", "--json goes with --dry-run");
  const opts = engineOptions(o);
  const paths = statePaths(opts.stateDir);
  hostSettings(process.env); // a bad setting (the forge table among them) fails here, at its line
  const forges = forgeTable(process.env);
  const entries = await readEntries(path.dirname(paths.ledger));
  const { now } = await resolveNow(paths, o.now, "show");
  const wanted = await wantedComments(paths, forges, entries, new Date(now).toISOString(), cell);
  const pushEntries = await readPushEntries(path.dirname(paths.ledger));
  const pushes = (await wantedPushes(paths, forges, cell)).map((w) => ({
    w,
    step: plannedPush(
      w,
      pushEntries.find((e) => e.cell === w.cell && e.life === w.life),
    ),
  }));
  const rows = wanted.map((w) => {
    const body = render(w.facts);
    const entry = entries.find((e) => e.cell === w.cell && e.life === w.life && e.kind === w.facts.kind);
    return { w, body, step: plannedStep(w, entry, body) };
  });
  if (o.json) {
    out(
      JSON.stringify(
        {
          formatVersion: 1,
          forges: forges.length,
          comments: rows.map(({ w, body, step }) => ({
            cell: w.cell,
            incarnation: w.life,
            kind: w.facts.kind,
            project: w.project,
            publishes: w.publication.publishes,
            ...(w.publication.publishes
              ? { forge: { kind: w.publication.forge.kind, url: w.publication.forge.url }, issue: w.publication.issue }
              : { why: w.publication.why }),
            step,
            body,
          })),
          pushes: pushes.map(({ w, step }) => ({
            cell: w.cell,
            incarnation: w.life,
            branch: w.branch,
            pushes: w.target.pushes,
            ...(w.target.pushes ? { url: w.target.url } : {}),
            step,
          })),
        },
        null,
        2,
      ),
    );
    return 0;
  }
  if (forges.length === 0) err("No forge table (LAZARUS_FORGES is unset): every cell publishes locally only.");
  if (rows.length === 0) out(cell ? `No comments for cell ${cell}.` : "No cell calls for a comment.");
  for (const { w, body, step } of rows) {
    out(`# ${w.cell} ${w.facts.kind} (incarnation ${w.life}): ${step}`);
    out(body);
  }
  for (const { w, step } of pushes) out(`# ${w.cell} push (incarnation ${w.life}): ${step}`);
  return 0;
}

async function publish(o: PublishOpts): Promise<number> {
  const opts = engineOptions(o);
  const hostEnv = process.env;
  const r = await withCells(
    opts,
    "lazarus publish",
    async ({ paths, ledger }) => {
      const { now, heldUntil } = await resolveNow(paths, o.now, "hold");
      return publishComments({
        paths,
        ledger,
        hostEnv,
        host: opts.hostSettings ?? hostSettings(hostEnv),
        now: Math.max(now, heldUntil ?? 0),
        budgetMs: PUBLISH_BUDGET_MS,
        retryFailed: true,
        command: "lazarus publish",
      });
    },
    { holdFutureLedger: true },
  );
  if (r.status === "off") {
    out("No forge table (LAZARUS_FORGES is unset): nothing to publish.");
    return 0;
  }
  out(publishLine(r) ?? "publish: nothing to do.");
  const pushes = r.status === "worked" ? r.pushes : undefined;
  const pushesLeft = pushes ? pushes.failed + pushes.rejected + pushes.retried + pushes.pending : 0;
  return r.status === "worked" && r.report.failed === 0 && r.report.pending === 0 && pushesLeft === 0 ? 0 : 1;
}
