import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Command } from "commander";
import { formatDiagnostic, hasErrors, visible } from "../config/diagnostics.js";
import { loadConfig } from "../config/load.js";
import { diffDesired, renderDiff } from "../gitops/diff.js";
import { exportRevision, fetchRef, repoCache } from "../gitops/git.js";
import { configDirOf } from "../gitops/sync.js";
import { LazarusError } from "../util/errors.js";
import { action, out } from "./common.js";

export function diffCommand(): Command {
  return new Command("diff")
    .description(
      "the desired-state difference between two commits, cell by cell and field by field (the running cells are not looked at)",
    )
    .requiredOption("--base <ref>", "the older ref or commit")
    .requiredOption("--head <ref>", "the newer ref or commit")
    .requiredOption("--repo <url|path>", "the config repository")
    .option("--path <subdir>", "the directory inside the repo that holds cells.d/ and portfolios/")
    .option("--json", "print the differences as JSON")
    .action(
      action(async (o: { base: string; head: string; repo: string; path?: string; json?: boolean }) => {
        const tmp = await mkdtemp(path.join(os.tmpdir(), "lazarus-diff-"));
        try {
          const cache = repoCache(tmp, o.repo);
          const load = async (ref: string) => {
            const sha = await fetchRef(cache, ref);
            const { desired, diagnostics } = await loadConfig(
              await configDirOf(await exportRevision(cache, sha), o.path),
            );
            if (hasErrors(diagnostics))
              throw new LazarusError(
                "INVALID_REVISION",
                `${ref} (${sha.slice(0, 12)}) does not validate:\n${diagnostics
                  .filter((d) => d.severity === "error")
                  .map(formatDiagnostic)
                  .join("\n")}`,
              );
            return { sha, desired };
          };
          const base = await load(o.base);
          const head = await load(o.head);
          const diffs = diffDesired(base.desired, head.desired);
          if (o.json) out(JSON.stringify({ base: base.sha, head: head.sha, differences: diffs }, null, 2));
          else out(visible(`${base.sha.slice(0, 12)}..${head.sha.slice(0, 12)}\n${renderDiff(diffs)}`)); // field values are the committer's text
          return diffs.length > 0 ? 2 : 0;
        } finally {
          await rm(tmp, { recursive: true, force: true });
        }
      }),
    );
}
