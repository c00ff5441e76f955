// The daemon's work queue, keyed by cell name. Sources (src/daemon/sources/) only add names; the
// queue hands them to the reconcile step: one reconcile per name at a time (a name at work waits
// here until its work ends), batches of different names at once up to a limit, and a full pass
// beside them, one at a time. A name can also wait for a time: the reconcile asked to look again
// then (its next time rule), or a failure's backoff. Those wake times live in one map, woken by one
// timer armed for the earliest, so 10,000 waiting cells cost no timer each.

export interface QueueHandlers {
  // Reconcile these names; the queue marked them at work and frees them when this settles.
  reconcile(names: Set<string>): Promise<void>;
  // A full pass over every cell; it claims its own names (claim) as it goes.
  reconcileAll(): Promise<void>;
  // A handler threw (a bug: handlers report their own failures).
  crashed(err: unknown): void;
}

// Retry of a transient failure: the first after 2 s, doubling, at most 5 minutes apart.
export const BACKOFF = { firstMs: 2_000, maxMs: 300_000 } as const;
// setTimeout's longest delay (about 24.8 days); a later wake is re-armed when it comes near.
const MAX_TIMER_MS = 2 ** 31 - 1;

export class WorkQueue {
  private readonly ready = new Set<string>();
  private allQueued = false;
  private allRunning = false;
  private readonly inflight = new Set<string>();
  private readonly workers = new Set<Promise<void>>();
  private readonly wakes = new Map<string, number>(); // name → when it is due (epoch ms)
  private allWake: number | undefined;
  private readonly failures = new Map<string, number>(); // transient failures in a row
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private stopped = false;

  constructor(
    private readonly handlers: QueueHandlers,
    private readonly maxWorkers = 8,
    private readonly backoff: { firstMs: number; maxMs: number } = BACKOFF,
    private readonly clock: () => number = Date.now,
  ) {}

  // Reconcile these names as soon as a worker is free (each after its work in progress, if any).
  add(names: Iterable<string>): void {
    for (const n of names) this.ready.add(n);
    this.kick();
  }

  // Run a full pass as soon as the one in progress (if any) ends.
  addAll(): void {
    this.allQueued = true;
    this.kick();
  }

  // Reconcile the name after ms, replacing the wake it had (the reconcile that asks saw the world last).
  addAfter(name: string, ms: number): void {
    const at = this.clock() + Math.max(0, ms);
    this.wakes.set(name, at);
    this.arm(at);
  }

  // Run a full pass after ms (the state dir was busy).
  addAllAfter(ms: number): void {
    const at = this.clock() + ms;
    this.allWake = Math.min(this.allWake ?? at, at);
    this.arm(at);
  }

  // A transient failure of the name: wake it after its backoff (or sooner, at `soonerMs`, when its
  // next time rule comes first). Returns the delay.
  retry(name: string, soonerMs?: number): number {
    const n = (this.failures.get(name) ?? 0) + 1;
    this.failures.set(name, n);
    const backoff = Math.min(this.backoff.firstMs * 2 ** Math.min(n - 1, 30), this.backoff.maxMs);
    const delay = soonerMs === undefined ? backoff : Math.min(backoff, soonerMs);
    this.addAfter(name, delay);
    return delay;
  }

  // The name converged or failed for good: its backoff starts again from the first step.
  forget(name: string): void {
    this.failures.delete(name);
  }

  // The name has no wake any more (only an event brings it back).
  cancel(name: string): void {
    this.wakes.delete(name);
  }

  // The daemon no longer knows the name: nothing of it stays.
  remove(name: string): void {
    this.wakes.delete(name);
    this.failures.delete(name);
  }

  // When the name is next due, if it waits for a time.
  dueAt(name: string): number | undefined {
    return this.wakes.get(name);
  }

  // For a full pass: mark at work the names no other reconcile is at, and hand them back; the
  // others are queued for after their work in progress.
  claim(names: Iterable<string>): Set<string> {
    const mine = new Set<string>();
    const busy: string[] = [];
    for (const n of names) {
      if (this.inflight.has(n)) busy.push(n);
      else {
        this.inflight.add(n);
        this.ready.delete(n);
        mine.add(n);
      }
    }
    if (busy.length > 0) this.add(busy);
    return mine;
  }

  // The name's work is done (before the rest of its batch): an event for it may start at once.
  release(name: string): void {
    this.inflight.delete(name);
  }

  // Resolves when nothing is queued to run or running.
  async idle(): Promise<void> {
    while (this.workers.size > 0) await Promise.all([...this.workers]);
  }

  // Start no more work; what runs finishes (idle() waits for it).
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private kick(): void {
    if (this.stopped) return;
    if (this.allQueued && !this.allRunning) {
      this.allQueued = false;
      this.allRunning = true;
      this.spawn(this.handlers.reconcileAll().finally(() => (this.allRunning = false)));
    }
    if (this.workers.size >= this.maxWorkers) return;
    const batch = new Set([...this.ready].filter((n) => !this.inflight.has(n)));
    if (batch.size === 0) return;
    for (const n of batch) {
      this.ready.delete(n);
      this.inflight.add(n);
    }
    this.spawn(this.handlers.reconcile(batch).finally(() => batch.forEach((n) => this.inflight.delete(n))));
  }

  private spawn(work: Promise<void>): void {
    const w: Promise<void> = work
      .catch((err: unknown) => this.handlers.crashed(err))
      .finally(() => {
        this.workers.delete(w);
        this.kick();
      });
    this.workers.add(w);
  }

  // Arm the one timer for `at` when that is earlier than what it is armed for.
  private arm(at: number): void {
    if (this.stopped || at >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.wake(), Math.min(Math.max(0, at - this.clock()), MAX_TIMER_MS));
    this.timer.unref();
  }

  // Move every name whose time came to the ready set, and arm the timer for the next one.
  private wake(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = this.clock();
    let next = Number.POSITIVE_INFINITY;
    const due: string[] = [];
    for (const [n, at] of this.wakes) {
      if (at <= now) due.push(n);
      else next = Math.min(next, at);
    }
    for (const n of due) this.wakes.delete(n);
    if (this.allWake !== undefined && this.allWake <= now) {
      this.allWake = undefined;
      this.allQueued = true;
    } else if (this.allWake !== undefined) next = Math.min(next, this.allWake);
    if (next < Number.POSITIVE_INFINITY) this.arm(next);
    this.add(due);
  }
}
