// The journal: the action in flight, written before its side effects and removed after it is
// recorded. One left behind means a run was interrupted; the next run records that in the ledger
// and converges from what it observes.
import { unlink } from "node:fs/promises";
import path from "node:path";
import { readJson, writeJsonAtomic } from "../util/fsx.js";
import { isErrno } from "../util/errors.js";

export interface JournalEntry {
  cell: string;
  action: string;
  reason: string;
  pid: number;
  startedAt: string;
}

export class Journal {
  readonly file: string;
  constructor(stateRoot: string) {
    this.file = path.join(stateRoot, "journal.json");
  }
  read(): Promise<JournalEntry | undefined> {
    return readJson<JournalEntry>(this.file);
  }
  begin(entry: JournalEntry): Promise<void> {
    return writeJsonAtomic(this.file, entry);
  }
  async end(): Promise<void> {
    try {
      await unlink(this.file);
    } catch (err) {
      if (!isErrno(err, "ENOENT")) throw err;
    }
  }
}
