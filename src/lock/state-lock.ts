// The state-dir lock as one process uses it: held briefly (journal recovery, observe and plan,
// ledger appends, the GitOps decision), never across a cell's long work, which runs under that
// cell's own lock (cell-lock.ts). Inside one process the holds queue; a hold inside a hold (the
// same async context) is the same hold.
import { AsyncLocalStorage } from "node:async_hooks";
import { serialized } from "../util/serial.js";
import { acquireLock } from "./lock.js";

const held = new AsyncLocalStorage<ReadonlySet<string>>();

export class StateLock {
  constructor(
    readonly file: string,
    readonly command: string,
    readonly timeoutMs: number,
  ) {}

  // Run body holding the lock, waiting up to timeoutMs for another process that holds it.
  async hold<T>(body: () => Promise<T>, timeoutMs = this.timeoutMs): Promise<T> {
    const mine = held.getStore();
    if (mine?.has(this.file)) return body();
    return serialized(`state-lock:${this.file}`, async () => {
      const lock = await acquireLock(this.file, this.command, { timeoutMs });
      try {
        return await held.run(new Set([...(mine ?? []), this.file]), body);
      } finally {
        await lock.release();
      }
    });
  }
}
