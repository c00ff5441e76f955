// A host service's doors into members' network namespaces: one HTTP server per namespace file,
// on a listener made inside it (listen.ts). sync() makes the open doors match what the service's
// cell files want (opened, kept, or closed when the member left or its namespace was made again),
// and the doors file tells whoever starts a member that its door is open.
import type http from "node:http";
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { writeFileAtomic } from "../util/fsx.js";
import { mapLimit } from "../util/map-limit.js";
import { LazarusError } from "../util/errors.js";
import { closeServer, listenInNetns, serveOn } from "./listen.js";
import { netnsInode } from "./netns.js";

export interface DoorWant {
  tag: string; // who it serves (cell incarnation and member): another tag at the same file reopens it
  server: () => http.Server;
}

interface Door {
  tag: string;
  ino: number;
  server: http.Server;
}

const OPEN_AT_ONCE = 8; // listener children started at the same time (each is a short node process)
// Connections one door holds at once (a member's own, idle ones and open tunnels included); past it
// the service drops new ones at once. The service is one process serving every cell: without a cap,
// one member opening connections by the thousand would use up its descriptors and stall the others.
export const DOOR_MAX_CONNECTIONS = 256;

export class Doors {
  private readonly open = new Map<string, Door>(); // by namespace file

  constructor(readonly port: number) {}

  // onError: a door that could not be opened (the others are opened all the same).
  async sync(wanted: ReadonlyMap<string, DoorWant>, onError: (file: string, err: unknown) => void): Promise<void> {
    for (const [file, d] of this.open) {
      const w = wanted.get(file);
      if (!w || w.tag !== d.tag || netnsInode(file) !== d.ino) this.close(file);
    }
    // a member whose namespace file is not made yet (not started) gets its door once it is: the
    // backend makes the file, then asks for a reload
    const missing = [...wanted].filter(([file]) => !this.open.has(file) && netnsInode(file) !== undefined);
    await mapLimit(missing, OPEN_AT_ONCE, ([file, w]) => this.openDoor(file, w).catch((err) => onError(file, err)));
  }

  private async openDoor(file: string, w: DoorWant): Promise<void> {
    const ino = netnsInode(file);
    if (ino === undefined) throw new LazarusError("BRIDGE_FAILED", `${file} is not a network namespace`);
    const server = w.server();
    server.maxConnections = DOOR_MAX_CONNECTIONS;
    await serveOn(server, await listenInNetns(file, this.port));
    this.open.set(file, { tag: w.tag, ino, server });
  }

  close(file: string): void {
    const d = this.open.get(file);
    this.open.delete(file);
    if (d) closeServer(d.server);
  }

  closeAll(): void {
    for (const file of [...this.open.keys()]) this.close(file);
  }

  // Each open door's namespace file and that namespace's inode.
  listening(): Record<string, number> {
    return Object.fromEntries([...this.open].map(([f, d]) => [f, d.ino]));
  }
}

// What a service writes after each sync: its pid and its open doors.
export interface DoorsFile {
  pid: number;
  doors: Record<string, number>;
}

export function writeDoorsFile(file: string, doors: Doors): Promise<void> {
  return writeFileAtomic(file, `${JSON.stringify({ pid: process.pid, doors: doors.listening() })}\n`, 0o600);
}

// Wait until the running service (pid from running()) says its door in namespace netns (inode
// ino) is open.
export async function waitForDoor(
  doorsFile: string,
  netns: string,
  ino: number,
  running: () => Promise<number | undefined>,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const f = await readFile(doorsFile, "utf8").then(
      (t) => JSON.parse(t) as DoorsFile,
      () => undefined,
    );
    if (f && f.doors[netns] === ino && f.pid === (await running())) return;
    if (Date.now() > deadline)
      throw new LazarusError("BRIDGE_FAILED", `${what} has no door open in ${netns} (see its log)`);
    await sleep(20);
  }
}
