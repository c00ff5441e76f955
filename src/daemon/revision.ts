// GitOps under the daemon: each poll fetches the ref and takes a new commit whole, or records why
// not (rejected, held). The last good revision stays in force. The decision is the one `lazarus
// sync` takes (src/gitops/decide.ts).
import path from "node:path";
import { formatDiagnostic } from "../config/diagnostics.js";
import { loadConfig } from "../config/load.js";
import { observeAndPlan, resolveNow } from "../engine.js";
import { approvedRevision, judgeRevision, recordInForce } from "../gitops/decide.js";
import { readGitopsStatus } from "../gitops/status.js";
import { checkoutRevision, revisionDir } from "../gitops/sync.js";
import { errorMessage } from "../util/errors.js";
import type { DaemonContext, RepoOptions } from "./context.js";

interface Fetched {
  revision: string;
  subject: string;
  configDir: string;
}

export class RevisionFollower {
  private readonly stateRoot: string;

  constructor(
    private readonly ctx: DaemonContext,
    private readonly repo: RepoOptions,
  ) {
    this.stateRoot = path.dirname(ctx.paths.ledger);
  }

  // Fetch the ref and judge what it names. A failure to fetch is logged and tried at the next poll.
  async poll(): Promise<void> {
    const { repo, ctx } = this;
    try {
      const fetched = await checkoutRevision(this.stateRoot, repo.url, repo.ref, repo.subdir);
      // Reading and writing the gitops status and the ledger: one writer at a time. A busy state
      // dir is tried again at the next poll.
      await ctx.lock.run(() => this.judge(fetched));
    } catch (err) {
      ctx.metrics.errors.inc({ kind: "git" });
      ctx.log.error({ repo: repo.url, err: errorMessage(err) }, "cannot fetch the config repo");
    }
  }

  // Take a fetched commit whole, or record why not (rejected, held). The caller holds the lock.
  private async judge(fetched: Fetched): Promise<void> {
    const { ctx, repo, stateRoot } = this;
    const { revision, subject, configDir } = fetched;
    const status = await readGitopsStatus(stateRoot);
    if (!ctx.config.revision && status?.inForce && status.inForce.revision !== revision) {
      // After a restart: the revision that was in force is in force again until the new one passes.
      ctx.config.use(
        await revisionDir(stateRoot, repo.url, status.inForce.revision, repo.subdir),
        status.inForce.revision,
      );
    }
    if (revision === ctx.config.revision) return;
    // A revision already rejected or held is judged again only once approved (it cannot change).
    const judged =
      status?.lastAttempt?.revision === revision &&
      (status.lastAttempt.outcome === "rejected" || status.lastAttempt.outcome === "held");
    if (judged && (await approvedRevision(stateRoot)) !== revision) return;
    const { now: clock, heldUntil } = await resolveNow(ctx.paths, undefined, "hold");
    const now = heldUntil ?? clock; // what it records is never earlier than the ledger's last time
    const candidate = { revision, subject, configDir, loaded: await loadConfig(configDir, await ctx.credentials()) };
    const verdict = await judgeRevision(
      {
        stateRoot,
        ledger: ctx.ledger,
        repo: { url: repo.url, ref: repo.ref, ...(repo.subdir ? { subdir: repo.subdir } : {}) },
        budget: repo.budget,
        allowMassClose: false,
        now,
        ...(ctx.config.revision ? { inForce: ctx.config.revision } : {}),
        observeAndPlan: async (desired) => {
          const { observed, plan: p } = await observeAndPlan(ctx.paths, desired, now);
          return { observed, actions: p.actions };
        },
      },
      candidate,
    );
    const { decision } = verdict;
    if (decision.outcome === "rejected") {
      for (const d of decision.diagnostics)
        if (d.severity === "error")
          ctx.log.error({ revision, file: d.file, line: d.line, col: d.col }, formatDiagnostic(d));
      ctx.metrics.errors.inc({ kind: "invalid-revision" });
      return;
    }
    if (decision.outcome === "held") {
      ctx.log.warn({ revision, closes: decision.closes }, decision.detail);
      return;
    }
    ctx.log.info({ revision, subject }, "new revision in force");
    ctx.config.use(configDir, revision);
    await ctx.config.cache.refresh();
    await recordInForce(stateRoot, verdict.status, candidate, verdict.at, "applied", `in force from ${verdict.at}`);
    ctx.enqueueAll("new revision");
  }
}
