// One cell's lock, <state>/locks/<cell>.lock: whoever acts on a cell (an apply's actions for it, a
// checkpoint, an accept, a recovery of what a killed run left in it) holds it throughout, so two
// reconcilers never act on one cell at once, while other cells go on. Taken before the state-dir
// lock, never while waiting for it (docs/state-layout.md, "Locks").
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { StatePaths } from "../cells/layout.js";
import { LazarusError } from "../util/errors.js";
import { acquireLock, type Lock } from "./lock.js";

export function cellLockFile(paths: Pick<StatePaths, "ledger">, cell: string): string {
  // A cell's name is a DNS label; anything else (a name typed on the command line) never names a file.
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(cell))
    throw new LazarusError(
      "NO_SUCH_CELL",
      `${JSON.stringify(cell)} is not a cell name (a DNS label such as review-7); see lazarus status`,
    );
  return path.join(path.dirname(paths.ledger), "locks", `${cell}.lock`);
}

// Take the cell's lock, waiting up to timeoutMs for its holder; LOCKED naming the holder after.
export async function lockCell(
  paths: Pick<StatePaths, "ledger">,
  cell: string,
  command: string,
  timeoutMs: number,
): Promise<Lock> {
  const file = cellLockFile(paths, cell);
  await mkdir(path.dirname(file), { recursive: true });
  try {
    return await acquireLock(file, command, { timeoutMs });
  } catch (err) {
    if (err instanceof LazarusError && err.code === "LOCKED")
      throw new LazarusError(
        "LOCKED",
        `cell ${cell} is busy: ${err.message.replace(/^another Lazarus holds the state dir: /, "another Lazarus is acting on it: ")}`,
      );
    throw err;
  }
}

// The cell's lock if it is free now (or its holder died), else undefined.
export async function tryLockCell(
  paths: Pick<StatePaths, "ledger">,
  cell: string,
  command: string,
): Promise<Lock | undefined> {
  try {
    return await lockCell(paths, cell, command, 0);
  } catch (err) {
    if (err instanceof LazarusError && err.code === "LOCKED") return undefined;
    throw err;
  }
}

// Hold a cell while what a killed run left in it is dealt with: a release, or undefined when a live
// process holds the cell (that run is not dead but at work: its leftovers are its own).
export type TryCell = (cell: string) => Promise<{ release(): Promise<void> } | undefined>;
