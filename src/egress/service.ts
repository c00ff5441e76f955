// The proxy process's work: one proxy server per member named in <state>/egress/cells/, listening
// on 127.0.0.1:3128 inside the member's network namespace (a door, bridge/doors.ts), reloaded on
// SIGHUP and every second, so a cell's changed list applies to its next connection and a closed
// cell's doors close. Each connection attempt is appended to events.jsonl. After its own restart
// the proxy opens every door again from the cell files.
import { RotatingLog } from "../util/rotating-log.js";
import { readFile, stat } from "node:fs/promises";
import { Doors, writeDoorsFile, type DoorWant } from "../bridge/doors.js";
import { addressCheck } from "./addresses.js";
import { proxyServer, type EgressEvent, type ProxyPolicy } from "./proxy.js";
import { parseHosts } from "./resolve.js";
import { Splicer } from "./splicer.js";
import type { EgressSettings } from "./settings.js";
import { MEMBER_PORT, cellsDir, doorsFile, eventsFile, readCellFiles, settingsFile } from "./state.js";

const FULL_EVERY = 10; // the timer reads everything again at least every 10th time, changed or not

// A member's refused connections are events too: the file rotates past this size (one older file
// kept), so a member cannot fill the state dir's disk with them.
export const EVENTS_MAX_BYTES = 64 << 20;
// Events are appended in windows of this length: a window's first event at once, the others together
// at its end (at most two file writes per window, not one per connection: a write and its completion
// cost the proxy ~70 µs of CPU each; bench/README.md).
export const EVENTS_FLUSH_MS = 20;

export class EgressService {
  private readonly doors: Doors;
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
    this.doors = new Doors(MEMBER_PORT);
    this.events = new RotatingLog(eventsFile(stateRoot), EVENTS_MAX_BYTES, EVENTS_FLUSH_MS);
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
    const wanted = new Map<string, DoorWant>();
    for (const c of cells) {
      this.policies.set(c.cell, { entries: c.entries, check, hosts });
      for (const m of c.members)
        if (typeof m.netns === "string") wanted.set(m.netns, this.door(c.cell, c.uid, m.identity));
    }
    if (wanted.size) this.splicer.warm();
    await this.doors.sync(wanted, (file, err) =>
      process.stderr.write(`egress: cannot open the door in ${file}: ${String(err)}\n`),
    );
    await writeDoorsFile(doorsFile(this.stateRoot), this.doors);
  }

  // A member's proxy: its cell's policy read at each request.
  private door(cell: string, uid: string, member: string): DoorWant {
    return {
      tag: `${uid}/${member}`,
      server: () =>
        proxyServer(
          { cell, member },
          () => this.policies.get(cell),
          (e) => this.record(e),
          this.splicer,
        ),
    };
  }

  private record(e: EgressEvent): void {
    this.events.write(e);
    this.onEvent(e);
  }

  // Each namespace file the service has a door in, with that namespace's inode.
  listening(): Record<string, number> {
    return this.doors.listening();
  }

  // Stop listening: members' connections are refused until a proxy opens their doors again.
  async close(): Promise<void> {
    this.doors.closeAll();
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
