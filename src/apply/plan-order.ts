// The plan order of one apply run: for each action, its slot (its outcome once its effects are
// done, or that it was not run) and whether its ledger entry is durable. Workers settle slots in
// any order; the committer waits for them in plan order and marks each committed, which lets the
// next action of the same cell start.
export class PlanOrder<S> {
  readonly slots: (S | undefined)[];
  readonly ready: Promise<S>[]; // ready[i]: slot i is settled
  readonly committed: Promise<void>[]; // committed[i]: action i's ledger entry is durable
  private readonly slotWaiters: ((s: S) => void)[];
  private readonly committedWaiters: (() => void)[];

  constructor(n: number) {
    this.slots = new Array<S | undefined>(n);
    this.slotWaiters = new Array<(s: S) => void>(n);
    this.committedWaiters = new Array<() => void>(n);
    this.ready = Array.from({ length: n }, (_, i) => new Promise<S>((r) => (this.slotWaiters[i] = r)));
    this.committed = Array.from({ length: n }, (_, i) => new Promise<void>((r) => (this.committedWaiters[i] = r)));
  }

  settle(i: number, s: S): void {
    this.slots[i] = s;
    (this.slotWaiters[i] as (s: S) => void)(s);
  }

  commit(i: number): void {
    (this.committedWaiters[i] as () => void)();
  }

  // Every action taken as committed: unblocks cells waiting on a record that will not come.
  commitAll(): void {
    for (const j of this.committedWaiters) j();
  }
}
