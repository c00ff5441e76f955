import { visible } from "../config/diagnostics.js";
import path from "node:path";
import { Command } from "commander";
import { readGitopsStatus } from "../gitops/status.js";
import { statePaths } from "../cells/layout.js";
import { resolveNow, resolveStateDir } from "../compute.js";
import { observe } from "../observe/observe.js";
import { renderStatusText, statusViews, withPushes } from "../status/status.js";
import { readPushEntries } from "../forge/pushes.js";
import { cellSpend } from "../gateway/spend.js";
import { action, err, out, stdoutColors } from "./common.js";

// What status --json prints (? marks what is present only sometimes: revision with GitOps).
export const STATUS_JSON_SHAPE =
  "{revision?: {repo, ref, inForce, lastAttempted, outcome, detail, held: {revision, closes, reason, at}}, cells: [{name, state, place, backend, where: {host?, uid?, cgroup?, engine?, image?}, replacing?: {from, to}, project, members: [{identity, role, status, pid, exitCode, exitReason, where: {cgroup?, container?}, stalled?: {forMs, lastEvidenceAt, lastEvidence}, stoppedForStall?: {at, outcome}}], progress?: {slice, onStall, lastEvidenceAt, lastEvidence, stalledForMs, slices, stalls, notes}, push?: {branch, url, status, trigger, sha, at, error}, expiresAt, closedAt, archivedAt, lastAppliedRevision, frozen, models?: {windowMs, budget: {tokens?, cost?, periodMs} | null, tokens, cost, byModel: [{model, calls, tokensIn, tokensOut, cost}]}, problem?, lastAttemptedRevision?, outcome?}]}";

// `lazarus status [NAME]`.
export function statusCommand(): Command {
  return new Command("status")
    .description("show each cell's state, backend and where it runs, members and expiry as they really are")
    .argument("[name]", "only this cell")
    .option(
      "-s, --state-dir <dir>",
      "state directory (default $LAZARUS_STATE_DIR, else the spec's /tmp and ~/.lazarus paths)",
    )
    .option("-c, --config <dir>", "accepted for symmetry with the other commands; status reads only the state dir", ".")
    .option("--json", `print ${STATUS_JSON_SHAPE} as JSON`)
    .option("--now <time>", "show expiry and progress stalls relative to this ISO-8601 time")
    .action(
      action(async (name: string | undefined, o: { stateDir?: string; json?: boolean; now?: string }) => {
        const paths = statePaths(resolveStateDir(o.stateDir));
        const gitops = await readGitopsStatus(path.dirname(paths.ledger));
        const { now, diagnostics: timeDiags } = await resolveNow(paths, o.now, "show");
        const cells = statusViews(await observe(paths), name, now).map((c) => ({
          ...c,
          ...(gitops
            ? {
                lastAttemptedRevision: gitops.lastAttempt?.revision ?? null,
                outcome: gitops.lastAttempt?.outcome ?? null,
              }
            : {}),
        }));
        for (const c of cells) {
          const models = await cellSpend(path.dirname(paths.ledger), c.name, now);
          if (models) Object.assign(c, { models });
        }
        withPushes(cells, await readPushEntries(path.dirname(paths.ledger)).catch(() => []));
        for (const d of timeDiags) err(`warning: ${d.message}${d.hint ? ` (${d.hint})` : ""}`);
        const revision = gitops
          ? {
              repo: gitops.repo,
              ref: gitops.ref,
              inForce: gitops.inForce?.revision ?? null,
              lastAttempted: gitops.lastAttempt?.revision ?? null,
              outcome: gitops.lastAttempt?.outcome ?? null,
              detail: gitops.lastAttempt?.detail ?? null,
              held: gitops.held ?? null,
            }
          : undefined;
        const unknown = name !== undefined && cells.length === 0;
        if (unknown)
          err(
            `no cell named ${name}: none is live, in the graveyard or archived under this state dir; lazarus status lists them all`,
          );
        if (o.json) out(JSON.stringify({ ...(revision ? { revision } : {}), cells }, null, 2));
        else if (!unknown) {
          if (gitops) {
            // Subjects and details are the committer's text: escaped, as every repo text on a terminal.
            out(
              visible(
                `Revision in force: ${gitops.inForce ? `${gitops.inForce.revision.slice(0, 12)} ${gitops.inForce.subject}` : "(none)"} from ${gitops.repo} ${gitops.ref}`,
              ),
            );
            if (gitops.lastAttempt && gitops.lastAttempt.revision !== gitops.inForce?.revision)
              out(
                visible(
                  `Last attempted: ${gitops.lastAttempt.revision.slice(0, 12)} ${gitops.lastAttempt.outcome}: ${gitops.lastAttempt.detail ?? ""}`,
                ),
              );
            out("");
          }
          out(renderStatusText(cells, now, stdoutColors()));
        }
        return unknown ? 1 : 0;
      }),
    );
}
