#!/usr/bin/env node
// The lazarus command line.
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { acceptCommand } from "./cli/accept.js";
import { applyCommand } from "./cli/apply.js";
import { checkpointCommand } from "./cli/checkpoint.js";
import { diffCommand } from "./cli/diff.js";
import { ledgerCommand } from "./cli/ledger.js";
import { planCommand } from "./cli/plan.js";
import { portfolioCommand } from "./cli/portfolio.js";
import { statusCommand } from "./cli/status.js";
import { syncCommand } from "./cli/sync.js";
import { validateCommand } from "./cli/validate.js";
import { verifyCommand } from "./cli/verify.js";
import { watchCommand } from "./cli/watch.js";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };

const program = new Command("lazarus")
  .description("Declarative reconciler for agent cells: write desired state in cells.d/, then plan and apply.")
  .version(pkg.version)
  .showHelpAfterError()
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
  .addCommand(ledgerCommand());

await program.parseAsync(process.argv);
