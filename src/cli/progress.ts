// Progress of long work (apply, sync, checkpoint) on a terminal: one status line on stderr, redrawn
// in place — cells done/total, actions done/total, elapsed time, what runs now. Only when stderr
// is a TTY (and TERM is not dumb) and neither --no-progress nor LAZARUS_NO_PROGRESS=1 is given:
// piped or redirected output stays exactly line-oriented, without a control character. NO_COLOR
// only takes colours away; the status line has none.
import type { Action } from "../plan/actions.js";

const REDRAW_MS = 200;
const SPIN = ["|", "/", "-", "\\"];

export interface ProgressOptions {
  progress?: boolean; // commander's --no-progress sets false
}

export interface Progress {
  // The plan's actions (their cells are counted), before the first starts.
  plan(actions: readonly Action[]): void;
  start(action: Action): void;
  finish(action: Action): void;
  // A single piece of work without a plan (lazarus checkpoint).
  task(label: string): void;
  // Print a line to stdout without tearing the status line.
  print(write: () => void): void;
  stop(): void;
}

const NONE: Progress = {
  plan() {},
  start() {},
  finish() {},
  task() {},
  print(write) {
    write();
  },
  stop() {},
};

export function progressEnabled(
  o: ProgressOptions,
  stream: NodeJS.WriteStream = process.stderr,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  if (o.progress === false) return false;
  if (env.LAZARUS_NO_PROGRESS && env.LAZARUS_NO_PROGRESS !== "0") return false;
  if (env.TERM === "dumb") return false;
  return Boolean(stream.isTTY);
}

export function progress(o: ProgressOptions, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!progressEnabled(o, stream)) return NONE;
  return new TtyProgress(stream);
}

const key = (a: Action): string => `${a.kind} ${a.cell}`;

class TtyProgress implements Progress {
  private readonly t0 = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private shown = false;
  private frame = 0;
  private totalActions = 0;
  private doneActions = 0;
  private readonly perCell = new Map<string, number>(); // actions left per cell
  private doneCells = 0;
  private readonly running = new Map<string, number>();
  private label: string | undefined;

  constructor(private readonly stream: NodeJS.WriteStream) {}

  plan(actions: readonly Action[]): void {
    this.label = undefined;
    this.totalActions = actions.length;
    for (const a of actions) this.perCell.set(a.cell, (this.perCell.get(a.cell) ?? 0) + 1);
    if (actions.length) this.tick();
  }

  start(a: Action): void {
    this.running.set(key(a), (this.running.get(key(a)) ?? 0) + 1);
    this.tick();
  }

  finish(a: Action): void {
    const n = (this.running.get(key(a)) ?? 1) - 1;
    if (n > 0) this.running.set(key(a), n);
    else this.running.delete(key(a));
    this.doneActions++;
    const left = (this.perCell.get(a.cell) ?? 1) - 1;
    this.perCell.set(a.cell, left);
    if (left === 0) this.doneCells++;
    this.draw();
  }

  task(label: string): void {
    this.label = label;
    this.tick();
  }

  print(write: () => void): void {
    this.clear();
    write();
    if (this.timer) this.draw();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.clear();
  }

  private tick(): void {
    if (!this.timer) {
      this.timer = setInterval(() => this.draw(), REDRAW_MS);
      this.timer.unref(); // never keeps the command alive
    }
    this.draw();
  }

  private clear(): void {
    if (!this.shown) return;
    this.stream.write("\r\x1b[2K");
    this.shown = false;
  }

  private line(): string {
    const secs = Math.floor((Date.now() - this.t0) / 1000);
    const elapsed = `${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, "0")}`;
    const spin = SPIN[this.frame++ % SPIN.length] as string;
    const parts: string[] = [];
    if (this.totalActions)
      parts.push(`cells ${this.doneCells}/${this.perCell.size}`, `actions ${this.doneActions}/${this.totalActions}`);
    parts.push(elapsed);
    const now = this.label ?? [...this.running.keys()].join(", ");
    return `${spin} ${parts.join("  ")}${now ? `  ${now}` : ""}`;
  }

  private draw(): void {
    const width = Math.max(20, (this.stream.columns || 80) - 1);
    let text = this.line();
    if (text.length > width) text = `${text.slice(0, width - 1)}…`;
    this.stream.write(`\r\x1b[2K${text}`);
    this.shown = true;
  }
}
