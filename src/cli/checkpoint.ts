import { Command } from "commander";
import { runCheckpoint } from "../engine.js";
import { progress, type ProgressOptions } from "./progress.js";
import { action, engineOptions, out, withCommon, withLockTimeout, type CommonOpts } from "./common.js";

export function checkpointCommand(): Command {
  return withLockTimeout(withCommon(new Command("checkpoint")))
    .description(
      "take a checkpoint of a live cell now (project/, shared/ and home/ as a zstd or gzip tar with a manifest)",
    )
    .argument("<name>", "the cell")
    .option("--now <time>", "record the checkpoint at this ISO-8601 time")
    .option("--json", "print {cell, checkpoint} as JSON")
    .option("--no-progress", "no progress line on stderr (it is only drawn on a terminal; also LAZARUS_NO_PROGRESS=1)")
    .action(
      action(async (name: string, o: CommonOpts & ProgressOptions & { now?: string; json?: boolean }) => {
        const bar = progress(o);
        bar.task(`checkpointing ${name}`);
        const archive = await runCheckpoint(engineOptions(o), name).finally(() => bar.stop());
        out(
          o.json
            ? JSON.stringify({ cell: name, checkpoint: archive })
            : `Checkpoint of ${name}: .lazarus/checkpoints/${archive}`,
        );
        return 0;
      }),
    );
}
