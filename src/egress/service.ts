// The proxy process's work: one proxy server per member socket named in <state>/egress/cells/,
// reloaded on SIGHUP and every second, so a cell's changed list applies to its next connection
// and a closed cell's sockets go away. Each connection attempt is appended to events.jsonl.
import { RotatingLog } from "../util/rotating-log.js";
import { chmod, mkdir, readFile, rm, stat } from "node:fs/promises";
import type http from "node:http";
import path from "node:path";
import { addressCheck } from "./addresses.js";
import { proxyServer, type EgressEvent, type ProxyPolicy } from "./proxy.js";
import { parseHosts } from "./resolve.js";
import { Splicer } from "./splicer.js";
import type { EgressSettings } from "./settings.js";
import { SOCKET_NAME, cellsDir, eventsFile, readCellFiles, settingsFile } from "./state.js";

const FULL_EVERY = 10; // the timer reads everything again at least every 10th time, changed or not

interface Served {
  server: http.Server;
  cell: string;
  member: string;
}

// A member's refused connections are events too: the file rotates past this size (one older file
// kept), so a member cannot fill the state dir's disk with them.
export const EVENTS_MAX_BYTES = 64 << 20;

export class EgressService {
  private readonly served = new Map<string, Served>(); // by socket dir
  private readonly policies = new Map<string, ProxyPolicy>(); // by cell
  private readonly events: RotatingLog;
  private readonly splicer: Splicer; // moves bulk tunnels' bytes (see splicer.ts)
  private reloading: Promise<void> | undefined;
  private again = false;
  private seen: string | undefined; // the files' stat before the last full read
  private hostsFile: string | undefined;
  private skipped = 0;

  constructor(
    private readonly stateRoot: string,
    private readonly onEvent: (e: EgressEvent) => void = () => {},
  ) {
    this.splicer = new Splicer();
    this.events = new RotatingLog(eventsFile(stateRoot), EVENTS_MAX_BYTES);
  }

  // Read the cell files again and make the listening sockets match them (one reload at a time).
  reload(): Promise<void> {
    if (this.reloading) {
      this.again = true;
      return this.reloading;
    }
    this.reloading = this.reloadNow().finally(() => {
      this.reloading = undefined;
      if (this.again) {
        this.again = false;
        void this.reload();
      }
    });
    return this.reloading;
  }

  // The timer's reload: everything is read again only when the cells dir, the settings or the
  // hosts file changed since the last full read (their stat), or at least every FULL_EVERY calls.
  // Writers send SIGHUP (reload) after each change; this catches a lost signal.
  async reloadIfChanged(): Promise<void> {
    if ((await this.fingerprint()) === this.seen && ++this.skipped < FULL_EVERY) return;
    return this.reload();
  }

  private async fingerprint(): Promise<string> {
    const one = (p: string | undefined): Promise<string> =>
      p
        ? stat(p, { bigint: true }).then(
            (s) => `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`,
            () => "-",
          )
        : Promise.resolve("-");
    return (await Promise.all([cellsDir(this.stateRoot), settingsFile(this.stateRoot), this.hostsFile].map(one))).join(
      " ",
    );
  }

  private async reloadNow(): Promise<void> {
    this.seen = await this.fingerprint();
    this.skipped = 0;
    const settings = await readSettings(this.stateRoot);
    if (settings.hostsFile !== this.hostsFile) {
      this.hostsFile = settings.hostsFile;
      this.seen = undefined; // the next timer call reads again, with the new hosts file's stat
    }
    const hosts = settings.hostsFile
      ? parseHosts(await readFile(settings.hostsFile, "utf8").catch(() => "")).table
      : new Map<string, string[]>();
    const check = addressCheck({ cidrs: settings.cidrs });
    const cells = await readCellFiles(this.stateRoot);
    this.policies.clear();
    const wanted = new Map<string, { cell: string; member: string }>();
    for (const c of cells) {
      this.policies.set(c.cell, { entries: c.entries, check, hosts });
      for (const m of c.members) wanted.set(m.socketDir, { cell: c.cell, member: m.identity });
    }
    for (const [dir, s] of this.served) {
      const w = wanted.get(dir);
      if (w && w.cell === s.cell && w.member === s.member) continue;
      await this.unserve(dir);
    }
    for (const [dir, w] of wanted)
      if (!this.served.has(dir))
        await this.serve(dir, w.cell, w.member).catch((err: unknown) =>
          process.stderr.write(`egress: cannot listen for ${w.member} of ${w.cell} at ${dir}: ${String(err)}\n`),
        );
  }

  private async serve(dir: string, cell: string, member: string): Promise<void> {
    await mkdir(dir, { recursive: true, mode: 0o755 });
    await chmod(dir, 0o755);
    const sock = path.join(dir, SOCKET_NAME);
    await rm(sock, { force: true });
    const server = proxyServer(
      { cell, member },
      () => this.policies.get(cell),
      (e) => this.record(e),
      this.splicer,
    );
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(sock, () => resolve());
    });
    await chmod(sock, 0o666); // the member's uid connects; only its own view shows this dir
    this.served.set(dir, { server, cell, member });
  }

  private async unserve(dir: string): Promise<void> {
    const s = this.served.get(dir);
    this.served.delete(dir);
    s?.server.close();
    s?.server.closeAllConnections();
    await rm(dir, { recursive: true, force: true });
  }

  private record(e: EgressEvent): void {
    this.events.write(e);
    this.onEvent(e);
  }

  // Every socket the service listens on (for tests and the pid record).
  sockets(): string[] {
    return [...this.served.keys()].map((d) => path.join(d, SOCKET_NAME));
  }

  // Stop listening. The members' socket dirs stay (a member's view binds its dir, so a restarted
  // proxy's new socket in it is the one the member reaches); connections meanwhile are refused.
  async close(): Promise<void> {
    for (const [dir, s] of this.served) {
      s.server.close();
      s.server.closeAllConnections();
      await rm(path.join(dir, SOCKET_NAME), { force: true });
    }
    this.served.clear();
    this.splicer.stop();
    await this.events.close();
  }
}

async function readSettings(stateRoot: string): Promise<EgressSettings> {
  try {
    return JSON.parse(await readFile(settingsFile(stateRoot), "utf8")) as EgressSettings;
  } catch {
    return { cidrs: [] };
  }
}
