// The Perl forwarder a member's connections go through (src/egress/forwarder-perl.ts), run as the
// sandbox and container backends run it but on the host's loopback: it listens on a TCP port the
// test picked and relays each connection to a unix socket the test serves (an echo server here,
// the proxy in a member's namespace). It watches a `sleep` the test started, and ends once the
// test kills that sleep by pid.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync, readdirSync, readlinkSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PERL_FORWARDER } from "../../src/egress/forwarder-perl.js";
import { ROOT, cleanup, freePort, procState, tempDir, waitFor } from "../helpers.js";

const PERL = "/usr/bin/perl";
const noPerl = existsSync(PERL) ? undefined : `${PERL} is missing (the forwarder is a Perl script)`;
if (noPerl) console.log(`skipping the forwarder tests: ${noPerl}`);

let dir: string;
let sock: string;
let echo: net.Server;
let watched: ChildProcess;
let port: number;

// The pids of the processes running the forwarder for this test's socket (read from /proc; the
// socket path is this test's own temp dir, so no other process matches).
function forwarderPids(): number[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const argv = readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0");
        return argv[0] === PERL && argv.includes(sock) && procState(Number(d)) !== "Z";
      } catch {
        return false;
      }
    })
    .map(Number);
}

// Send data through the forwarder, end the sending side, and collect what comes back.
function roundTrip(data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, "127.0.0.1");
    const got: Buffer[] = [];
    c.on("data", (d: Buffer) => got.push(d));
    c.on("end", () => resolve(Buffer.concat(got)));
    c.on("error", reject);
    c.end(data);
  });
}

const digest = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

describe.skipIf(noPerl)("the egress forwarder", () => {
  beforeAll(async () => {
    dir = tempDir("lazarus-forwarder-");
    sock = path.join(dir, "proxy.sock");
    echo = net.createServer((s) => s.pipe(s)); // echoes, and ends once the client ended
    await new Promise<void>((r) => echo.listen(sock, r));
    watched = spawn("sleep", ["600"], { stdio: "ignore" });
    port = await freePort();
    const r = spawnSync(PERL, ["-e", PERL_FORWARDER, String(port), sock, String(watched.pid)], { stdio: "inherit" });
    expect(r.status).toBe(0);
  });

  afterAll(async () => {
    if (watched?.pid) process.kill(watched.pid, "SIGKILL");
    await waitFor(() => forwarderPids().length === 0, 5000).catch(() => undefined);
    echo?.close();
    cleanup(dir);
  });

  it("relays 16 MB each way in full and passes on the end of each direction", async () => {
    const data = randomBytes(16 << 20);
    const back = await roundTrip(data);
    expect(back.length).toBe(data.length);
    expect(digest(back)).toBe(digest(data));
  });

  it("serves 40 connections at once from one process (no process per connection)", async () => {
    const open = await Promise.all(
      Array.from(
        { length: 40 },
        () =>
          new Promise<net.Socket>((resolve, reject) => {
            const c = net.connect(port, "127.0.0.1", () => c.write("ping"));
            c.once("data", () => resolve(c));
            c.on("error", reject);
          }),
      ),
    );
    expect(forwarderPids()).toHaveLength(1);
    const answers = await Promise.all(
      open.map(
        (c, i) =>
          new Promise<string>((resolve) => {
            let text = "";
            c.on("data", (d: Buffer) => (text += d.toString()));
            c.on("end", () => resolve(text));
            c.end(`#${i}`);
          }),
      ),
    );
    expect(answers).toEqual(open.map((_, i) => `#${i}`));
    const many = await Promise.all(
      Array.from({ length: 20 }, () => randomBytes(1 << 20)).map(async (d) => digest(await roundTrip(d)) === digest(d)),
    );
    expect(many.every(Boolean)).toBe(true);
  });

  it.skipIf(!["x64", "arm64", "riscv64"].includes(process.arch))(
    "moves a bulk connection's bytes through pipes of its own (splice), a short one's through its memory",
    async () => {
      const pipes = (): number =>
        forwarderPids()
          .flatMap((p) =>
            readdirSync(`/proc/${p}/fd`).map((f) => {
              try {
                return readlinkSync(`/proc/${p}/fd/${f}`);
              } catch {
                return "";
              }
            }),
          )
          .filter((l) => l.startsWith("pipe:")).length;
      const before = pipes(); // whatever it inherited from the test runner
      const c = await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect(port, "127.0.0.1", () => s.write("ping"));
        s.once("data", () => resolve(s));
        s.on("error", reject);
      });
      try {
        expect(pipes() - before).toBe(0); // short so far: no pipes
        const got: Buffer[] = [];
        let have = 0;
        c.on("data", (d: Buffer) => (got.push(d), (have += d.length)));
        const first = randomBytes(2 << 20);
        c.write(first);
        await waitFor(() => have >= first.length, 10_000);
        expect(pipes() - before).toBe(4); // past 1 MiB each way: one pipe (two descriptors) each way
        const rest = randomBytes(2 << 20);
        await new Promise<void>((r) => c.end(rest, () => c.once("end", () => r())));
        expect(digest(Buffer.concat(got))).toBe(digest(Buffer.concat([first, rest])));
      } finally {
        c.destroy();
      }
      await waitFor(() => pipes() === before); // closed with the connection
    },
  );

  it("refuses a connection at once while nothing listens on the socket, and relays again once it does", async () => {
    await new Promise<void>((r) => echo.close(() => r()));
    const refused = await new Promise<string>((resolve) => {
      const c = net.connect(port, "127.0.0.1");
      c.on("data", () => resolve("answered"));
      c.on("end", () => resolve("closed"));
      c.on("error", () => resolve("closed"));
    });
    expect(refused).toBe("closed");
    echo = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(sock, r));
    expect((await roundTrip(Buffer.from("again"))).toString()).toBe("again");
    expect(forwarderPids()).toHaveLength(1);
  });
});

describe("forwarder.pl", () => {
  it("compiles (perl -c), as the copy the build puts beside the module", () => {
    const r = spawnSync("perl", ["-c", path.join(ROOT, "dist", "egress", "forwarder.pl")], { encoding: "utf8" });
    expect(r.stderr).toContain("syntax OK");
    expect(r.status).toBe(0);
  });
});
