import { Command } from "commander";
import { runAccept } from "../engine.js";
import { action, engineOptions, err, out, withCommon, withLockTimeout, type CommonOpts } from "./common.js";

export function acceptCommand(): Command {
  return withLockTimeout(withCommon(new Command("accept")))
    .description("accept an invitation to a cell with its token (from .lazarus/invites/<name>.token in the cell)")
    .argument("<name>", "the cell")
    .argument("<identity>", "the invited member, e.g. human:alexander")
    .requiredOption("--token <token>", "the invitation token (or - to read it from stdin)")
    .option("--now <time>", "accept as of this ISO-8601 time")
    .action(
      action(async (name: string, identity: string, o: CommonOpts & { token: string; now?: string }) => {
        let token = o.token;
        if (token === "-") {
          const chunks: Buffer[] = [];
          for await (const c of process.stdin) chunks.push(c as Buffer);
          token = Buffer.concat(chunks).toString("utf8").trim();
        }
        const r = await runAccept(engineOptions(o), name, identity, token);
        if (r.status === "accepted") {
          out(`${identity} joined cell ${name}.`);
          return 0;
        }
        err(`error: invitation not accepted: ${r.why}`);
        return 1;
      }),
    );
}
