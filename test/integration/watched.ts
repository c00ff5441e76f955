// What the daemon tests that share a state dir with commands start from: a config dir of these
// cell files, an empty state dir, and `lazarus watch` on them reconciling every second, waiting at
// most 300 ms for the state-dir lock (so a command holding it is met at once) and 2 s for a
// member to stop; resolved once it says it is watching and each named cell's record passes ready.
//
//   ({ state, config, watch } = await watchCells("lazarus-x-state-", files, ["one"], (r) => …));
import { existsSync } from "node:fs";
import path from "node:path";
import type { CellRecord } from "../../src/cells/record.js";
import { cleanup, configDir, readRecord, startWatch, tempDir, waitFor, type Watch } from "../helpers.js";

// `lazarus watch` arguments: this config and state dir, reconciling every second.
export const everySecond = (config: string, state: string): string[] => [
  "--config",
  config,
  "--state-dir",
  state,
  "--tick",
  "* * * * * *",
];

export interface Watched {
  state: string;
  config: string;
  watch: Watch;
}

export async function watchCells(
  statePrefix: string,
  files: Record<string, string>,
  cells: string[],
  ready: (record: CellRecord) => boolean,
  ms = 30_000,
): Promise<Watched> {
  const state = tempDir(statePrefix);
  const config = configDir(files);
  const watch = startWatch([...everySecond(config, state), "--lock-timeout", "300ms", "--stop-timeout", "2000"]);
  try {
    await waitFor(() => watch.logs.includes('"msg":"watching"') || watch.exited(), 20_000);
    if (watch.exited()) throw new Error(`watch exited at start:\n${watch.logs}`);
    for (const n of cells) {
      const dir = path.join(state, "cells", n);
      await waitFor(() => existsSync(path.join(dir, ".lazarus", "cell.json")) && ready(readRecord(dir)), ms);
    }
  } catch (err) {
    await watch.stop(); // a failed start leaves nothing running, nor its dirs
    cleanup(state, config);
    throw err;
  }
  return { state, config, watch };
}
