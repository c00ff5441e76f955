#!/usr/bin/env node
// The lazarus command line.
import { readFileSync } from "node:fs";
import { Command, Option } from "commander";
import { reportFailure } from "./cli/failure.js";
import { typedOption } from "./cli/flags.js";

// Every command, in the order help lists them. Each is imported only when needed: a command's
// module pulls in what it runs (the daemon: pino, prom-client, chokidar; apply: the backends), and
// `lazarus plan` should not pay for `lazarus watch`.
const COMMANDS: Record<string, () => Promise<Command>> = {
  validate: async () => (await import("./cli/validate.js")).validateCommand(),
  plan: async () => (await import("./cli/plan.js")).planCommand(),
  render: async () => (await import("./cli/render.js")).renderCommand(),
  apply: async () => (await import("./cli/apply.js")).applyCommand(),
  sync: async () => (await import("./cli/sync.js")).syncCommand(),
  diff: async () => (await import("./cli/diff.js")).diffCommand(),
  watch: async () => (await import("./cli/watch.js")).watchCommand(),
  status: async () => (await import("./cli/status.js")).statusCommand(),
  checkpoint: async () => (await import("./cli/checkpoint.js")).checkpointCommand(),
  accept: async () => (await import("./cli/accept.js")).acceptCommand(),
  shell: async () => (await import("./cli/shell.js")).shellCommand(),
  exec: async () => (await import("./cli/shell.js")).execCommand(),
  portfolio: async () => (await import("./cli/portfolio.js")).portfolioCommand(),
  verify: async () => (await import("./cli/verify.js")).verifyCommand(),
  ledger: async () => (await import("./cli/ledger.js")).ledgerCommand(),
  events: async () => (await import("./cli/events.js")).eventsCommand(),
  summon: async () => (await import("./cli/verbs.js")).summonCommand(),
  team: async () => (await import("./cli/verbs.js")).teamCommand(),
  invite: async () => (await import("./cli/verbs.js")).inviteCommand(),
  close: async () => (await import("./cli/verbs.js")).closeCommand(),
  destroy: async () => (await import("./cli/verbs.js")).destroyCommand(),
  service: async () => (await import("./cli/service.js")).serviceCommand(),
  completion: async () => (await import("./cli/completion.js")).completionCommand(),
  logs: async () => (await import("./cli/logs.js")).logsCommand(),
  publish: async () => (await import("./cli/publish.js")).publishCommand(),
};

// The command argv invokes, when it names one: the first word that is neither an option nor the
// value of --max-file-size (the one global option taking a value). Anything else (help, an
// unknown word, no command) gets every command, so help and "unknown command" read as before.
function invokedCommand(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "--") return undefined;
    if (a === "--max-file-size") {
      i++;
      continue;
    }
    if (a.startsWith("-")) continue;
    return Object.hasOwn(COMMANDS, a) ? a : undefined;
  }
  return undefined;
}

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };

// A reader that went away (`lazarus logs CELL | head -n 1`) ends the command quietly, as it ends
// any Unix filter: nothing more can be shown, and it is not Lazarus's failure.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});

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
  .addOption(
    typedOption(
      "--max-file-size <size>",
      "the largest cells.d/ or portfolios/ file read, e.g. 512Ki or 4Mi (also LAZARUS_MAX_FILE_SIZE; default 1Mi)",
      { kind: "size" },
    ),
  )
  .hook("preAction", (cmd) => {
    // Global options reach every loader through the environment they are also documented by.
    const o = cmd.opts<{ debug?: boolean; maxFileSize?: number }>();
    if (o.debug) process.env.LAZARUS_DEBUG = "1";
    if (o.maxFileSize !== undefined) process.env.LAZARUS_MAX_FILE_SIZE = String(o.maxFileSize);
  });
const invoked = invokedCommand(process.argv.slice(2));
// `completion` describes every command, so it loads them all (as help does).
for (const name of invoked && invoked !== "completion" ? [invoked] : Object.keys(COMMANDS))
  program.addCommand(await (COMMANDS[name] as () => Promise<Command>)());

// Every command's --help lists the global options too.
const showGlobals = (cmd: Command): void => {
  cmd.configureHelp({ showGlobalOptions: true });
  cmd.commands.forEach(showGlobals);
};
showGlobals(program);

await program.parseAsync(process.argv);
