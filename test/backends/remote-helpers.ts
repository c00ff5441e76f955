// A real OpenSSH server for the remote backend's tests: its own host key, a client key, a test
// user (created here, its uid from a uid band, home in a temp dir, deleted at the end), its
// own sshd_config on 127.0.0.1 and a free port, run with -D -e as a child killed by its pid.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { freePort, tempDir, uidBand, type UidBand } from "../helpers.js";

export const SSHD = ["/usr/sbin/sshd", "/usr/local/sbin/sshd"].find((p) => existsSync(p));

// Why the remote tests cannot run here, or undefined.
export function remoteSkip(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (useradd, sshd)";
  if (!SSHD) return "no sshd (install openssh-server)";
  if (spawnSync("ssh", ["-V"]).status !== 0) return "no ssh client (install openssh-client)";
  if (spawnSync("ssh-keygen", ["-?"]).error) return "no ssh-keygen";
  return undefined;
}

function keygen(file: string): void {
  const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "lazarus-test", "-f", file]);
  if (r.status !== 0) throw new Error(`ssh-keygen: ${r.stderr}`);
}

export interface TestHost {
  dir: string;
  port: number;
  user: string;
  uid: number;
  home: string;
  identityFile: string;
  knownHosts: string;
  hostKey: string; // the key the server presents
  start(hostKey?: string): Promise<void>; // (re)start sshd, with this host key (default: the pinned one)
  stop(): Promise<void>;
  newHostKey(): string; // a fresh key (for the changed-key test)
  remove(): Promise<void>; // stop sshd, delete the user and the dir
  log(): string;
}

export async function testHost(band: UidBand = uidBand("backends/remote-hosts")): Promise<TestHost> {
  const dir = tempDir("lzr-remote-");
  chmodSync(dir, 0o755); // the test user reaches its home below
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 }); // sshd's privilege separation dir
  const port = await freePort();
  const user = `lzr-remote-${randomBytes(3).toString("hex")}`;
  const home = path.join(dir, "home");
  const { first, last } = band;
  // One of the upper half of the band (a test whose cells take uids from it claims from the first);
  // another test file may be creating its user at the same moment: try another on a clash.
  let uid = 0;
  for (let attempt = 0; uid === 0; attempt++) {
    const u = last - randomInt(0, Math.min(40, Math.floor((last - first) / 2)));
    const add = spawnSync("useradd", ["-M", "-d", home, "-s", "/bin/sh", "-u", String(u), "-U", "-p", "*", user]);
    if (add.status === 0) uid = u;
    else if (attempt > 20) throw new Error(`useradd: ${add.stderr}`);
  }
  mkdirSync(home, { mode: 0o700 });
  chownSync(home, uid, uid);
  const hostKey = path.join(dir, "host_ed25519");
  keygen(hostKey);
  const identityFile = path.join(dir, "client_ed25519");
  keygen(identityFile);
  const authorized = path.join(dir, "authorized_keys");
  writeFileSync(authorized, readFileSync(`${identityFile}.pub`));
  chmodSync(authorized, 0o644);
  const knownHosts = path.join(dir, "known_hosts");
  writeFileSync(
    knownHosts,
    `[127.0.0.1]:${port} ${readFileSync(`${hostKey}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ")}\n`,
  );
  const config = (key: string): string => {
    const file = path.join(dir, "sshd_config");
    writeFileSync(
      file,
      [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${key}`,
        `PidFile ${path.join(dir, "sshd.pid")}`,
        "UsePAM no",
        `AuthorizedKeysFile ${authorized}`,
        "StrictModes no",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        `AllowUsers ${user}`,
        "MaxSessions 50",
        "MaxStartups 50",
        "LogLevel VERBOSE",
        "",
      ].join("\n"),
    );
    return file;
  };
  let child: ChildProcess | undefined;
  let log = "";
  const host: TestHost = {
    dir,
    port,
    user,
    uid,
    home,
    identityFile,
    knownHosts,
    hostKey,
    log: () => log,
    async start(key = hostKey) {
      const c = spawn(SSHD as string, ["-D", "-e", "-f", config(key)], { stdio: ["ignore", "ignore", "pipe"] });
      c.stderr?.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
      child = c;
      // ready when it accepts a connection
      for (let i = 0; i < 400; i++) {
        if (c.exitCode !== null) throw new Error(`sshd exited ${c.exitCode}: ${log}`);
        const ok = await new Promise<boolean>((resolve) => {
          const s = net.connect(port, "127.0.0.1", () => {
            s.destroy();
            resolve(true);
          });
          s.once("error", () => resolve(false));
        });
        if (ok) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`sshd did not listen: ${log}`);
    },
    // The listener and its per-connection sshd processes (a multiplexed master connection
    // would otherwise outlive the listener): the host is gone for Lazarus.
    async stop() {
      const c = child;
      child = undefined;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const sessions = sshdDescendants(c.pid as number);
      const gone = new Promise((r) => c.once("exit", r));
      c.kill("SIGTERM");
      await gone;
      for (const p of sessions) {
        try {
          process.kill(p, "SIGKILL");
        } catch {
          // gone
        }
      }
    },
    newHostKey() {
      const f = path.join(dir, `host2_${randomBytes(3).toString("hex")}`);
      keygen(f);
      return f;
    },
    async remove() {
      await host.stop();
      // the test user's processes (members a failed test left) go before the user, by pid
      for (const p of processesOf(uid)) {
        try {
          process.kill(p, "SIGKILL");
        } catch {
          // gone
        }
      }
      spawnSync("userdel", [user]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return host;
}

function stat(pid: string): { ppid: number; comm: string } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    return {
      comm: s.slice(s.indexOf("(") + 1, s.lastIndexOf(")")),
      ppid: Number(s.slice(s.lastIndexOf(")") + 2).split(" ")[1]),
    };
  } catch {
    return undefined;
  }
}

// The sshd processes below the listener (one per connection, and their privilege-separated children).
function sshdDescendants(root: number): number[] {
  const parent = new Map<number, number>();
  const comm = new Map<number, string>();
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const s = stat(e);
    if (s) {
      parent.set(Number(e), s.ppid);
      comm.set(Number(e), s.comm);
    }
  }
  const out: number[] = [];
  for (const [pid] of parent) {
    let p = parent.get(pid);
    for (let hops = 0; p !== undefined && p > 1 && hops < 64; hops++) {
      if (p === root) {
        if ((comm.get(pid) ?? "").startsWith("sshd")) out.push(pid);
        break;
      }
      p = parent.get(p);
    }
  }
  return out;
}

// Live processes running as uid.
export function processesOf(uid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = readFileSync(`/proc/${e}/status`, "utf8");
      const m = /^Uid:\s+(\d+)/m.exec(st);
      const state = /^State:\s+(\S)/m.exec(st)?.[1];
      if (m && Number(m[1]) === uid && state !== "Z") out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}
