// Source: the config dir's cells.d/ and portfolios/. chokidar's events only collect file names;
// once they settle (no event for debounceMs: an editor's several writes, a `git pull` of 500
// files), the settled names go to the daemon, relative to the config dir (cells.d/a.yaml).
import path from "node:path";
import { watch, type FSWatcher } from "chokidar";

export interface FileSourceOptions {
  configDir: string;
  debounceMs: number;
  settled(files: string[]): void;
  error(err: unknown): void;
}

export class FileSource {
  private readonly changed = new Set<string>();
  private debounce: NodeJS.Timeout | undefined;

  private constructor(
    private readonly watcher: FSWatcher,
    private readonly opts: FileSourceOptions,
  ) {
    const onFile = (abs: string): void => this.onFile(abs);
    watcher.on("add", onFile).on("change", onFile).on("unlink", onFile);
    watcher.on("error", (err) => opts.error(err));
  }

  // Start watching; resolves once chokidar has its first view (events from then on count).
  static async start(opts: FileSourceOptions): Promise<FileSource> {
    const dirs = ["cells.d", "portfolios"].map((d) => path.join(opts.configDir, d));
    const source = new FileSource(watch(dirs, { ignoreInitial: true, depth: 0 }), opts);
    await new Promise<void>((resolve) => source.watcher.once("ready", () => resolve()));
    return source;
  }

  private onFile(abs: string): void {
    this.changed.add(path.relative(this.opts.configDir, abs).split(path.sep).join("/"));
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      const files = [...this.changed];
      this.changed.clear();
      this.opts.settled(files);
    }, this.opts.debounceMs);
  }

  async stop(): Promise<void> {
    clearTimeout(this.debounce);
    await this.watcher.close();
  }
}
