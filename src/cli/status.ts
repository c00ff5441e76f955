import { Command } from "commander";
import { statePaths } from "../cells/layout.js";
import { resolveNow, resolveStateDir } from "../engine.js";
import { observe } from "../observe/observe.js";
import { renderStatusText, statusViews } from "../status/status.js";
import { action, out, stdoutColors } from "./common.js";

export function statusCommand(): Command {
  return new Command("status")
    .description("show each cell's state, members and expiry as they really are")
    .argument("[name]", "only this cell")
    .option("-s, --state-dir <dir>", "state directory (default $LAZARUS_STATE_DIR, else the spec's /tmp and ~/.lazarus paths)")
    .option("-c, --config <dir>", "accepted for symmetry with the other commands; status reads only the state dir", ".")
    .option("--json", "print {cells:[{name,state,members,expiresAt}]} as JSON")
    .option("--now <time>", "show expiry relative to this ISO-8601 time")
    .action(
      action(async (name: string | undefined, o: { stateDir?: string; json?: boolean; now?: string }) => {
        const paths = statePaths(resolveStateDir(o.stateDir));
        const cells = statusViews(await observe(paths), name);
        const { now } = await resolveNow(paths, o.now);
        if (o.json) out(JSON.stringify({ cells }, null, 2));
        else out(renderStatusText(cells, now, stdoutColors()));
        return name && cells.length === 0 ? 1 : 0;
      }),
    );
}
