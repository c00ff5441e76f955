#!/usr/bin/env node
// The lazarus command line.
import { readFileSync } from "node:fs";
import { Command, Option } from "commander";
import { reportFailure } from "./cli/failure.js";
import { typedOption } from "./cli/flags.js";
import { acceptCommand } from "./cli/accept.js";
import { applyCommand } from "./cli/apply.js";
import { checkpointCommand } from "./cli/checkpoint.js";
import { diffCommand } from "./cli/diff.js";
import { ledgerCommand } from "./cli/ledger.js";
import { eventsCommand } from "./cli/events.js";
import { planCommand } from "./cli/plan.js";
import { portfolioCommand } from "./cli/portfolio.js";
import { statusCommand } from "./cli/status.js";
import { syncCommand } from "./cli/sync.js";
import { validateCommand } from "./cli/validate.js";
import { verifyCommand } from "./cli/verify.js";
import { watchCommand } from "./cli/watch.js";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };

// A failure outside a command's body (an event handler, a stray rejection) is one line too.
process.on("uncaughtException", (e) => {
  reportFailure(e);
  process.exit(process.exitCode ?? 1);
});
process.on("unhandledRejection", (e) => {
  reportFailure(e);
  process.exit(process.exitCode ?? 1);
});

const program = new Command("lazarus")
  .description("Declarative reconciler for agent cells: write desired state in cells.d/, then plan and apply.")
  .version(pkg.version)
  .showHelpAfterError()
  .configureHelp({ showGlobalOptions: true })
  .addOption(new Option("--debug", "print the stack of an internal error (also LAZARUS_DEBUG=1)"))
  .addOption(typedOption("--max-file-size <size>", "the largest cells.d/ or portfolios/ file read, e.g. 512Ki or 4Mi (also LAZARUS_MAX_FILE_SIZE; default 1Mi)", { kind: "size" }))
  .hook("preAction", (cmd) => {
    // Global options reach every loader through the environment they are also documented by.
    const o = cmd.opts<{ debug?: boolean; maxFileSize?: number }>();
    if (o.debug) process.env.LAZARUS_DEBUG = "1";
    if (o.maxFileSize !== undefined) process.env.LAZARUS_MAX_FILE_SIZE = String(o.maxFileSize);
  })
  .addCommand(validateCommand())
  .addCommand(planCommand())
  .addCommand(applyCommand())
  .addCommand(syncCommand())
  .addCommand(diffCommand())
  .addCommand(watchCommand())
  .addCommand(statusCommand())
  .addCommand(checkpointCommand())
  .addCommand(acceptCommand())
  .addCommand(portfolioCommand())
  .addCommand(verifyCommand())
  .addCommand(ledgerCommand())
  .addCommand(eventsCommand());

// Every command's --help lists the global options too.
const showGlobals = (cmd: Command): void => {
  cmd.configureHelp({ showGlobalOptions: true });
  cmd.commands.forEach(showGlobals);
};
showGlobals(program);

await program.parseAsync(process.argv);
