import { Command } from "commander";
import { statePaths } from "../cells/layout.js";
import { resolveStateDir } from "../compute.js";
import { verifyLedger } from "../ledger/ledger.js";
import { action, err, out } from "./common.js";

export function ledgerCommand(): Command {
  const ledger = new Command("ledger").description("the append-only, hash-chained audit ledger");
  ledger
    .command("verify")
    .description("check the ledger's hash chain; exit 1 naming the first bad entry")
    .option("-s, --state-dir <dir>", "state directory (default $LAZARUS_STATE_DIR)")
    .option("-c, --config <dir>", "accepted for symmetry; the ledger lives in the state dir", ".")
    .option("--json", "print the result as JSON")
    .action(
      action(async (o: { stateDir?: string; json?: boolean }) => {
        const paths = statePaths(resolveStateDir(o.stateDir));
        const r = await verifyLedger(paths.ledger, paths.ledgerHead);
        if (o.json) out(JSON.stringify({ file: paths.ledger, ...r }, null, 2));
        else if (r.ok) out(`Ledger OK: ${r.entries} entries, chain intact (${paths.ledger}).`);
        else err(`${paths.ledger}:${r.line}: ${r.problem} (${r.entries} entries before it are intact)`);
        return r.ok ? 0 : 1;
      }),
    );
  return ledger;
}
