// Source: a GitOps repo, polled every interval with ±10% jitter (so many hosts do not poll in
// step). Each poll runs to its end before the next is scheduled.
export class GitPoller {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly intervalMs: number,
    private readonly poll: () => Promise<void>,
  ) {}

  // Schedule the next poll (the caller ran the first one).
  start(): void {
    if (this.stopped) return;
    const jitter = this.intervalMs * (0.9 + Math.random() * 0.2);
    this.timer = setTimeout(() => void this.poll().finally(() => this.start()), jitter);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
