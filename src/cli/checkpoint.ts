import { Command } from "commander";
import { runCheckpoint } from "../engine.js";
import { action, engineOptions, out, withCommon, withLockTimeout, type CommonOpts } from "./common.js";

export function checkpointCommand(): Command {
  return withLockTimeout(withCommon(new Command("checkpoint")))
    .description("take a checkpoint of a live cell now (project/, shared/ and home/ as a zstd or gzip tar with a manifest)")
    .argument("<name>", "the cell")
    .option("--now <time>", "record the checkpoint at this ISO-8601 time")
    .option("--json", "print {cell, checkpoint} as JSON")
    .action(
      action(async (name: string, o: CommonOpts & { now?: string; json?: boolean }) => {
        const archive = await runCheckpoint(engineOptions(o), name);
        out(o.json ? JSON.stringify({ cell: name, checkpoint: archive }) : `Checkpoint of ${name}: .lazarus/checkpoints/${archive}`);
        return 0;
      }),
    );
}
