// The proxy hands a bulk tunnel to its splicer (src/egress/splicer.pl) and leaves the byte path:
// over real sockets (an echo server the test runs on 127.0.0.1 under the test name bulk.test,
// mapped by a hosts file, with 127.0.0.1/32 opened as an operator would for an internal host),
// the bytes arrive whole in both directions, an end passes on, the event counts every byte, and
// the tunnel's sockets are held by the splicer, not by node. A proxy killed by pid takes its
// splicer and the tunnels it moved with it.
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EgressEvent } from "../../src/egress/proxy.js";
import { SPLICE_AFTER } from "../../src/egress/proxy.js";
import { EgressService } from "../../src/egress/service.js";
import { SPLICER_PERL } from "../../src/egress/splicer.js";
import { MEMBER_PORT, doorsFile, writeCellFile, writeSettingsFile } from "../../src/egress/state.js";
import { ensureProxy, runningProxy } from "../../src/egress/supervise.js";
import { ensureNetns, memberNetnsFile, removeNetns } from "../../src/bridge/netns.js";
import { waitForDoor } from "../../src/bridge/doors.js";
import { cleanup, procState, tempDir, waitFor } from "../helpers.js";
import { connectInNetns, connectVia, egressCleanup, netnsSkipReason } from "./helpers.js";

const SIZE = 24 << 20;
const digest = (b: Buffer): string => createHash("sha256").update(b).digest("hex");
let dir: string;
let echo: net.Server;
let port: number;
const events: EgressEvent[] = [];

// The live splicers whose parent is pid (by /proc: ppid and argv).
function splicersOf(pid: number): number[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((p) => {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, "utf8");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        return (
          ppid === pid && procState(p) !== "Z" && readFileSync(`/proc/${p}/cmdline`, "utf8").includes("splicer.pl")
        );
      } catch {
        return false;
      }
    });
}

// The sockets a process holds beyond its stdio (the splicer's stdin and stdout are socket pairs).
const sockets = (pid: number): number =>
  readdirSync(`/proc/${pid}/fd`)
    .filter((f) => Number(f) > 2)
    .filter((f) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${f}`).startsWith("socket:");
      } catch {
        return false;
      }
    }).length;

function collect(s: net.Socket, n: number): Promise<Buffer> {
  const got: Buffer[] = [];
  let have = 0;
  return new Promise((resolve, reject) => {
    const on = (d: Buffer): void => {
      got.push(d);
      have += d.length;
      if (have >= n) {
        s.off("data", on);
        resolve(Buffer.concat(got));
      }
    };
    s.on("data", on);
    s.on("error", reject);
  });
}

async function cellAt(state: string, member: string): Promise<string> {
  mkdirSync(state, { recursive: true });
  writeFileSync(path.join(state, "hosts"), "127.0.0.1 bulk.test\n");
  await writeSettingsFile(state, {
    cidrs: [{ address: "127.0.0.1", prefix: 32 }],
    hostsFile: path.join(state, "hosts"),
  });
  const netns = memberNetnsFile(state, "u1", member);
  await ensureNetns(netns);
  await writeCellFile(state, {
    formatVersion: 1,
    cell: "c1",
    uid: "u1",
    entries: [{ host: "bulk.test", ports: [port] }],
    members: [{ identity: `agent:${member}`, home: member, netns }],
  });
  return netns;
}

// The running proxy of state has its door open in the namespace of file.
async function doorOpen(state: string, file: string): Promise<void> {
  const ino = await ensureNetns(file);
  await waitForDoor(doorsFile(state), file, ino, async () => (await runningProxy(state))?.pid, "the proxy");
}

const noPerl = readdirSync("/usr/bin").includes("perl") ? netnsSkipReason() : `${SPLICER_PERL} is missing`;
if (noPerl) console.warn(`SKIPPED: the splicer tests: ${noPerl}`);

describe.skipIf(noPerl)("the egress proxy's splicer", () => {
  beforeAll(async () => {
    dir = tempDir("lazarus-splice-");
    echo = net.createServer((s) => {
      s.pipe(s);
      s.on("error", () => s.destroy());
    });
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
    port = (echo.address() as net.AddressInfo).port;
  });

  afterAll(() => {
    echo?.close();
    cleanup(dir);
  });

  it("takes a bulk tunnel out of node: every byte arrives both ways, the end passes on, the event counts all", async () => {
    const state = path.join(dir, "inproc");
    const sock = await cellAt(state, "a");
    const service = new EgressService(state, (e) => events.push(e));
    try {
      await service.reload();
      // started with the first door, before a tunnel needs it (a bulk tunnel never waits for perl)
      await waitFor(() => splicersOf(process.pid).length === 1, 10_000);
      const c = await connectVia(sock, `bulk.test:${port}`);
      expect(c.status).toBe(200);
      // More than SPLICE_AFTER, echoed back: the splicer holds the tunnel from here on.
      const first = randomBytes(SPLICE_AFTER + 65536);
      const back = collect(c.socket, first.length);
      c.socket.write(first);
      expect(digest(await back)).toBe(digest(first));
      await waitFor(() => splicersOf(process.pid).length === 1, 10_000);
      const [splicer] = splicersOf(process.pid) as [number];
      await waitFor(() => sockets(splicer) === 2, 10_000); // the member's and the host's sockets
      // The rest, then the end: it all arrives, and the end comes back through the echo.
      const rest = randomBytes(SIZE - first.length);
      const all: Buffer[] = [];
      c.socket.on("data", (d: Buffer) => all.push(d));
      const ended = new Promise<void>((r) => c.socket.once("end", () => r()));
      c.socket.end(rest);
      await ended;
      expect(digest(Buffer.concat(all))).toBe(digest(rest));
      await waitFor(() => events.some((e) => e.verdict === "allowed" && e.host === "bulk.test"), 10_000);
      const e = events.find((x) => x.host === "bulk.test") as EgressEvent;
      expect([e.bytesUp, e.bytesDown]).toEqual([SIZE, SIZE]);
      expect(sockets(splicer)).toBe(0); // the tunnel is gone from the splicer too
    } finally {
      await service.close();
      await removeNetns(sock);
    }
    await waitFor(() => splicersOf(process.pid).length === 0, 10_000); // it ends with the service
  });

  it("a proxy killed by pid ends its splicer and every tunnel it moved; the member is refused until one opens its door again", async () => {
    const state = path.join(dir, "proc");
    const sock = await cellAt(state, "b");
    try {
      const pid = await ensureProxy(state, {
        cidrs: [{ address: "127.0.0.1", prefix: 32 }],
        hostsFile: path.join(state, "hosts"),
      });
      await doorOpen(state, sock);
      const c = await connectVia(sock, `bulk.test:${port}`);
      expect(c.status).toBe(200);
      const first = randomBytes(SPLICE_AFTER + 65536);
      const back = collect(c.socket, first.length);
      c.socket.write(first);
      await back;
      await waitFor(() => splicersOf(pid).length === 1, 10_000);
      const [splicer] = splicersOf(pid) as [number];
      await waitFor(() => sockets(splicer) === 2, 10_000);
      const closed = new Promise<void>((r) => c.socket.once("close", () => r()));
      process.kill(pid, "SIGKILL");
      await closed; // the member's tunnel ends with the proxy: nothing keeps moving its bytes
      await waitFor(() => procState(splicer) === undefined || procState(splicer) === "Z", 10_000);
      expect(await runningProxy(state)).toBeUndefined();
      // refused meanwhile (no other way out of the namespace), and served again by the next proxy
      await expect(connectInNetns(sock, MEMBER_PORT)).rejects.toThrow(/ECONNREFUSED/);
      await ensureProxy(state, { cidrs: [{ address: "127.0.0.1", prefix: 32 }], hostsFile: path.join(state, "hosts") });
      await doorOpen(state, sock);
      const again = await connectVia(sock, `bulk.test:${port}`);
      again.socket.destroy();
      expect(again.status).toBe(200);
    } finally {
      await egressCleanup(state);
    }
  });
});
