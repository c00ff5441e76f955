// `lazarus shell CELL --as IDENTITY` and `lazarus exec CELL --as IDENTITY -- CMD…`: a human joins
// a cell, in the member's own view of it (see src/session/).
import { Command } from "commander";
import { EXIT_REFUSED, runSession } from "../session/run.js";
import type { SessionRequest } from "../session/session.js";
import { reportFailure } from "./failure.js";
import { engineOptions, err, withCommon, withLockTimeout, type CommonOpts } from "./common.js";

interface SessionOpts extends CommonOpts {
  as: string;
  now?: string;
  shell?: string;
  stdin?: boolean;
}

// Lazarus's own failures exit EXIT_REFUSED, bad flags included, so they never pass for the
// command's exit code.
function baseCommand(name: string): Command {
  return withLockTimeout(withCommon(new Command(name)))
    .requiredOption("--as <identity>", "the member to be, e.g. human:alice (it must have joined: lazarus accept)")
    .option(
      "--now <time>",
      "record the session as of this ISO-8601 time (a state dir whose ledger is ahead of the clock)",
    )
    .exitOverride((e) => {
      process.exit(e.exitCode === 0 ? 0 : EXIT_REFUSED);
    });
}

async function run(req: SessionRequest, o: SessionOpts): Promise<void> {
  try {
    process.exitCode = await runSession(engineOptions(o), req, err);
  } catch (caught) {
    reportFailure(caught);
    process.exitCode = EXIT_REFUSED;
  }
}

const HELP_AFTER = (example: string): string => `
The session runs as the member's processes do: the cell's backend, the member's mounts, uid,
limits, network and environment (sandbox: bubblewrap as the cell's uid in the member's cgroup;
process: Lazarus's user in the member's home; container: a container of the member's image
alongside). It is refused (exit ${EXIT_REFUSED}) for a cell that is not active, an identity that is
not a member, a member that has not accepted its invitation, and a read-only role (observer,
guest) on backend process. Its start and end are recorded in the ledger (lazarus events).

Example:
  ${example}
`;

export function shellCommand(): Command {
  return baseCommand("shell")
    .description("open an interactive shell in a cell as one of its members (e.g. a human who accepted an invitation)")
    .argument("<cell>", "the cell")
    .option("--shell <path>", "the shell to run (default: your $SHELL where the member's view has it, else /bin/sh)")
    .addHelpText("after", HELP_AFTER("lazarus shell web-1 --as human:alice --state-dir /var/lib/lazarus"))
    .action(async (cell: string, o: SessionOpts) => {
      const tty = process.stdin.isTTY === true;
      if (!tty)
        err("lazarus shell: stdin is not a terminal; running the shell without one (it reads commands from stdin)");
      const size = {
        rows: (process.stdout.isTTY && process.stdout.rows) || 24,
        cols: (process.stdout.isTTY && process.stdout.columns) || 80,
      };
      await run(
        {
          kind: "shell",
          cell,
          identity: o.as,
          command: [],
          ...(o.shell ? { shell: o.shell } : {}),
          ...(tty ? { tty: { ...size, term: process.env.TERM || "xterm" } } : {}),
        },
        o,
      );
    });
}

export function execCommand(): Command {
  return baseCommand("exec")
    .description(
      "run one command in a cell as one of its members; its stdin, stdout, stderr and exit code pass through",
    )
    .argument("<cell>", "the cell")
    .argument(
      "<command...>",
      "the command and its arguments, after -- (required: the command's own options are never taken for Lazarus's)",
    )
    .option(
      "--shell <path>",
      "the SHELL the command sees (default: your $SHELL where the member's view has it, else /bin/sh)",
    )
    .option("-n, --no-stdin", "do not pass stdin (the command reads end of file), as ssh -n")
    .addHelpText("after", HELP_AFTER("lazarus exec web-1 --as human:alice -- git -C /cell/project status"))
    .action(async (cell: string, command: string[], o: SessionOpts) => {
      // Without "--", the command's own options would be taken for Lazarus's (sh -c: --config).
      if (!process.argv.includes("--")) {
        err(`error: put the command after --: lazarus exec ${cell} --as ${o.as} -- ${command.join(" ")}`);
        process.exitCode = EXIT_REFUSED;
        return;
      }
      await run(
        {
          kind: "exec",
          cell,
          identity: o.as,
          command,
          ...(o.shell ? { shell: o.shell } : {}),
          ...(o.stdin === false ? { noStdin: true } : {}),
        },
        o,
      );
    });
}
