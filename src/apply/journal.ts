// The journal: the actions in flight, each written before its side effects and removed after it is
// recorded in the ledger. One left behind means a run was interrupted; the next run records that
// in the ledger and converges from what it observes.
//
// Cells are applied concurrently (see apply.ts), so more than one action can be in flight: each
// has its own file, journal.d/<cell>.json (one action per cell is in flight at a time). A
// journal.json left by an older version (one action at a time) is still read and recovered.
import { mkdir, readdir, unlink } from "node:fs/promises";
import path from "node:path";
import { readJson, syncDir, writeInPlace } from "../util/fsx.js";
import { isErrno } from "../util/errors.js";

export interface JournalEntry {
  cell: string;
  action: string;
  reason: string;
  pid: number;
  startedAt: string;
}

// What an interrupted run left: the entry, or undefined when its file could not be read.
export interface LeftOver {
  file: string;
  entry: JournalEntry | undefined;
}

const unlinkQuiet = async (file: string): Promise<void> => {
  try {
    await unlink(file);
  } catch (err) {
    if (!isErrno(err, "ENOENT")) throw err;
  }
};

export class Journal {
  readonly legacyFile: string;
  readonly dir: string;
  private made = false;
  constructor(stateRoot: string) {
    this.legacyFile = path.join(stateRoot, "journal.json");
    this.dir = path.join(stateRoot, "journal.d");
  }

  private fileOf(cell: string): string {
    return path.join(this.dir, `${encodeURIComponent(cell)}.json`);
  }

  // Every entry left behind, in a fixed order (the legacy file first, then by cell name), so the
  // ledger records a recovery the same way whatever order the files were written in.
  async leftovers(): Promise<LeftOver[]> {
    const files = [this.legacyFile];
    const names = await readdir(this.dir).catch((err: unknown) => {
      if (isErrno(err, "ENOENT")) return [] as string[];
      throw err;
    });
    for (const n of names.filter((x) => x.endsWith(".json")).sort()) files.push(path.join(this.dir, n));
    const out: LeftOver[] = [];
    for (const file of files) {
      let entry: JournalEntry | undefined;
      try {
        entry = await readJson<JournalEntry>(file);
        if (entry === undefined) continue; // absent
      } catch {
        entry = undefined; // unreadable: still a run that stopped
      }
      out.push({ file, entry });
    }
    return out;
  }

  async begin(entry: JournalEntry): Promise<void> {
    if (!this.made) {
      await mkdir(this.dir, { recursive: true });
      await syncDir(path.dirname(this.dir)); // journal.d/ itself survives a power loss
      this.made = true;
    }
    // Written in place, not by temp file and rename: a run killed mid-write leaves a file that does
    // not parse, which recovery takes for what it is (an action that was under way); only its
    // existence must be durable before the action's first effect.
    const file = this.fileOf(entry.cell);
    await writeInPlace(file, `${JSON.stringify(entry, null, 2)}\n`, 0o644, false);
    await syncDir(this.dir);
  }

  end(cell: string): Promise<void> {
    return unlinkQuiet(this.fileOf(cell));
  }

  remove(file: string): Promise<void> {
    return unlinkQuiet(file);
  }
}
