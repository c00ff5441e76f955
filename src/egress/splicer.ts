// Taking node out of a tunnel's byte path. The proxy decides (CONNECT parsed, name checked,
// address checked, host reached) and then hands the tunnel's two sockets to splicer.pl, its child,
// which moves the bytes with splice(2) and reports the counts when the tunnel ends; the proxy
// records the event then. Node's copy tops out near a fifth of a loopback connection's speed here
// (bench/README.md); splice moves pages without copying them into any process.
//
// The child takes the descriptors out of this process with pidfd_getfd(2) (Linux >= 5.6, a known
// splice(2) number for the architecture, and ptrace access to this process: same uid, or
// CAP_SYS_PTRACE where Yama restricts it). Where any of that is missing, it says so once, the
// proxy logs it, and tunnels stay in node (slower, same policy, same events).
import { spawn, type ChildProcessByStdio } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { existsSync, fstatSync } from "node:fs";
import type { Socket } from "node:net";
import { fileURLToPath } from "node:url";
import readline from "node:readline";

export const SPLICER_PERL = "/usr/bin/perl";
const SCRIPT = fileURLToPath(new URL("./splicer.pl", import.meta.url));

export interface Spliced {
  up: number; // client → host
  down: number;
}

type Pending = { took: (ok: boolean, why?: string) => void; ended: (b: Spliced) => void };

// A node socket's descriptor, or undefined where node does not expose one.
function fdOf(s: Socket): number | undefined {
  const fd = (s as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === "number" && fd >= 0 ? fd : undefined;
}

// Stop node reading a socket (and keep it from starting again), so every byte not yet read stays in
// the kernel for the splicer; returns what node had already read.
function freeze(s: Socket): Buffer[] {
  const h = (s as unknown as { _handle?: { readStop?: () => number; reading?: boolean } })._handle;
  s.pause();
  (s as unknown as { _read: () => void })._read = () => {};
  h?.readStop?.();
  if (h) h.reading = false;
  const out: Buffer[] = [];
  for (let c = s.read() as Buffer | null; c !== null; c = s.read() as Buffer | null) out.push(c);
  return out;
}

function thaw(s: Socket): void {
  delete (s as unknown as { _read?: unknown })._read;
}

const written = (s: Socket, b: Buffer | string): Promise<void> => new Promise((r) => s.write(b, () => r()));

export class Splicer {
  private child: ChildProcessByStdio<Writable, Readable, null> | undefined;
  private ready: Promise<boolean> | undefined;
  private unavailable: string | undefined;
  private next = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)) {}

  // Why tunnels stay in node, if they do (after the first tunnel asked).
  why(): string | undefined {
    return this.unavailable;
  }

  // Start the child now (a proxy that has doors to serve), so the first bulk tunnel does not wait
  // for perl to start: that wait cost the first 100 MB download of a fresh proxy a third of its speed.
  warm(): void {
    void this.start();
  }

  private start(): Promise<boolean> {
    if (this.ready) return this.ready;
    if (!existsSync(SPLICER_PERL)) {
      this.unavailable = `${SPLICER_PERL} is missing`;
      this.log(`egress: tunnels stay in the proxy: ${this.unavailable}`);
      return (this.ready = Promise.resolve(false));
    }
    const child = spawn(SPLICER_PERL, [SCRIPT, String(process.pid)], { stdio: ["pipe", "pipe", "inherit"] });
    this.child = child;
    child.stdin.on("error", () => {});
    const lines = readline.createInterface({ input: child.stdout });
    this.ready = new Promise<boolean>((resolve) => {
      lines.on("line", (line) => this.onLine(line, resolve));
      child.on("error", (err) => this.gone(`cannot run ${SPLICER_PERL}: ${err.message}`, resolve));
      child.on("close", (code, signal) => this.gone(`splicer ended (${signal ?? code})`, resolve));
    });
    return this.ready;
  }

  private onLine(line: string, ready: (ok: boolean) => void): void {
    const [word, idText, ...rest] = line.split(" ");
    if (word === "ready") return ready(true);
    if (word === "unavailable") {
      this.unavailable = line.slice("unavailable ".length);
      this.log(`egress: tunnels stay in the proxy: ${this.unavailable}`);
      return ready(false);
    }
    const p = this.pending.get(Number(idText));
    if (!p) return;
    if (word === "ok") p.took(true);
    else if (word === "no") {
      this.pending.delete(Number(idText));
      p.took(false, rest.join(" "));
    } else if (word === "end") {
      this.pending.delete(Number(idText));
      p.ended({ up: Number(rest[0]) || 0, down: Number(rest[1]) || 0 });
    }
  }

  // The child ended: its tunnels ended with it (their counts are lost: recorded as 0 more bytes);
  // the next tunnel starts a new one unless it said it cannot work here.
  private gone(why: string, ready: (ok: boolean) => void): void {
    ready(false);
    if (this.child) this.log(`egress: ${why}`);
    this.child = undefined;
    if (!this.unavailable) this.ready = undefined;
    for (const p of this.pending.values()) {
      p.took(false, why);
      p.ended({ up: 0, down: 0 });
    }
    this.pending.clear();
  }

  // Hand a tunnel over (the caller stopped relaying it: unpiped and paused both sockets): node
  // stops reading both sockets, delivers what it had read and waits until everything it wrote is
  // out; then the child takes them. Resolves with a promise of the bytes the child moved (settled
  // once the tunnel ended), or undefined when the child could not take it: the sockets are node's
  // again with nothing lost, and the caller relays them as before.
  async hand(client: Socket, upstream: Socket): Promise<{ ended: Promise<Spliced> } | undefined> {
    const cfd = fdOf(client);
    const ufd = fdOf(upstream);
    if (cfd === undefined || ufd === undefined || !(await this.start()) || !this.child) return undefined;
    const toUp = freeze(client);
    const toDown = freeze(upstream);
    const EMPTY = Buffer.alloc(0); // its callback runs once every earlier write is out
    await Promise.all([
      ...toUp.map((b) => written(upstream, b)),
      ...toDown.map((b) => written(client, b)),
      written(client, EMPTY),
      written(upstream, EMPTY),
    ]);
    const inodes = ((): [number, number] | undefined => {
      try {
        return [fstatSync(cfd).ino, fstatSync(ufd).ino];
      } catch {
        return undefined;
      }
    })();
    if (client.destroyed || upstream.destroyed || !this.child || !inodes) return this.giveBack(client, upstream);
    const id = this.next++;
    let ended!: (b: Spliced) => void;
    const done = new Promise<Spliced>((r) => (ended = r));
    const took = await new Promise<boolean>((resolve) => {
      const took = (ok: boolean, why?: string): void => {
        if (!ok && why) this.log(`egress: a tunnel stays in the proxy: ${why}`);
        resolve(ok);
      };
      this.pending.set(id, { took, ended });
      this.child?.stdin.write(`T ${id} ${cfd} ${inodes[0]} ${ufd} ${inodes[1]}\n`);
    });
    return took ? { ended: done } : this.giveBack(client, upstream);
  }

  private giveBack(client: Socket, upstream: Socket): undefined {
    thaw(client);
    thaw(upstream);
    return undefined;
  }

  // End the child (and with it every tunnel it moves).
  stop(): void {
    this.child?.stdin.end();
    this.child = undefined;
  }
}
