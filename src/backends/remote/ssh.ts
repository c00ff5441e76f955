// Talking to a remote host: the system OpenSSH client, its host key pinned to the cell's
// known_hosts file (never trusting an unknown or changed key), no user or system ssh config, one
// multiplexed master connection per host (its socket in the state dir), and every argument of the
// remote command quoted so the remote shell never interprets it.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, lstatSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { RemoteTarget } from "../../config/types.js";
import { execa } from "../../util/exec.js";
import { LazarusError } from "../../util/errors.js";
import { sshBinary } from "./hosts.js";

// POSIX single quoting: the one form no shell expands inside.
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

// The command string ssh sends: `sh -c SCRIPT lazarus ARGS...`, each word quoted, so the remote
// login shell only ever sees literal words (a hostile cell, member or argument stays one word).
export function remoteCommand(script: string, args: readonly string[]): string {
  return ["sh", "-c", script, "lazarus", ...args].map(shq).join(" ");
}

// The line of ssh's complaint that says what happened (its banners and warnings left out).
export function sshReason(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !/^@+/.test(l) && !/^@/.test(l));
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED/.test(stderr))
    return "host key verification failed: the host presents a key other than the one pinned in known_hosts (refused)";
  if (lines.some((l) => /Host key verification failed/.test(l)))
    return "host key verification failed: the host's key is not in known_hosts (refused)";
  const telling = lines.find((l) =>
    /Connection refused|Permission denied|timed out|No route to host|Could not resolve|Connection closed|Connection reset|not accessible|No such file/.test(
      l,
    ),
  );
  return telling ?? lines[lines.length - 1] ?? "ssh failed";
}

export class Unreachable extends LazarusError {
  readonly reason: string;
  constructor(
    readonly target: RemoteTarget,
    stderr: string,
  ) {
    const reason = sshReason(stderr);
    super("REMOTE_UNREACHABLE", `host ${describe(target)} is unreachable: ${reason}`);
    this.reason = reason;
  }
}

export function describe(t: RemoteTarget): string {
  return `${t.name ? `${t.name} (` : ""}${t.user ? `${t.user}@` : ""}${t.host}:${t.port}${t.name ? ")" : ""}`;
}

export function hostKey(t: RemoteTarget): string {
  return JSON.stringify([t.host, t.port, t.user ?? "", t.identityFile, t.knownHosts]);
}

// The master's socket: <state>/ssh/<hash>, or a private dir under the temp dir when that path
// would pass the 108-byte limit of a unix socket. That dir's name can be guessed, and the temp dir
// is everyone's: one another user made (or a link) is refused, never used, as OpenSSH refuses a
// file of another owner.
function controlPath(stateRoot: string, t: RemoteTarget): string {
  const h = createHash("sha256").update(hostKey(t)).digest("hex").slice(0, 16);
  let dir = path.join(stateRoot, "ssh");
  if (dir.length + 18 > 100)
    dir = path.join(
      os.tmpdir(),
      `lazarus-ssh-${process.getuid?.() ?? 0}-${createHash("sha256").update(stateRoot).digest("hex").slice(0, 10)}`,
    );
  privateDir(dir);
  return path.join(dir, h);
}

// A directory of Lazarus's own user that only it can enter: made 0700 when missing, its mode
// narrowed when wider; refused when it is a link, not a directory, or another user's.
export function privateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  const uid = process.getuid?.() ?? 0;
  const refuse = (why: string): never => {
    throw new LazarusError(
      "REMOTE_CONTROL_DIR",
      `the directory of the ssh control sockets ${dir} ${why}: another user could read or replace the sockets; remove it (or give the state dir a shorter path, so the sockets live in it)`,
    );
  };
  if (st.isSymbolicLink()) refuse("is a symbolic link");
  if (!st.isDirectory()) refuse("is not a directory");
  if (st.uid !== uid) refuse(`is owned by uid ${st.uid}, not by Lazarus's uid ${uid}`);
  if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
}

export interface Ssh {
  target: RemoteTarget;
  bin: string;
  control: string;
  base: string[]; // options every call shares
}

export function ssh(stateRoot: string, target: RemoteTarget, env: NodeJS.ProcessEnv = process.env): Ssh {
  const bin = sshBinary(env);
  if (!bin)
    throw new LazarusError(
      "REMOTE_NO_SSH",
      "backend remote needs the OpenSSH client (ssh) and this host has none on PATH; install openssh-client",
    );
  const control = controlPath(stateRoot, target);
  const base = [
    "-F",
    "/dev/null", // no user or system config can loosen what follows
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    `UserKnownHostsFile=${target.knownHosts}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "CheckHostIP=no",
    "-o",
    "UpdateHostKeys=no",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "IdentityAgent=none",
    "-o",
    "PasswordAuthentication=no",
    "-o",
    "KbdInteractiveAuthentication=no",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "ServerAliveInterval=5",
    "-o",
    "ServerAliveCountMax=3",
    "-o",
    "LogLevel=ERROR",
    "-i",
    target.identityFile,
    "-p",
    String(target.port),
    "-o",
    `ControlPath=${control}`,
    ...(target.user ? ["-l", target.user] : []),
  ];
  return { target, bin, control, base };
}

// Open (or reuse) the host's master connection: `-N -f` in the background with its output in a
// file, so no call ever waits on a pipe the persisting master holds; ControlPersist keeps it for
// later calls (and ends it after 60 s idle); a failed connection says why.
const masters = new Map<string, Promise<void>>();
export function ensureMaster(s: Ssh): Promise<void> {
  let p = masters.get(s.control);
  if (!p) {
    p = openMaster(s);
    masters.set(s.control, p);
    p.catch(() => masters.delete(s.control));
  }
  return p;
}

// One process at a time opens a host's master (a mkdir lock beside the socket): a second
// `-M` on an existing socket would not fail but run as a plain, never-ending connection. Whoever
// finds the lock taken goes without a master (its calls connect directly, still pinned).
async function openMaster(s: Ssh): Promise<void> {
  const check = await execa(s.bin, [...s.base, "-O", "check", "--", s.target.host], {
    reject: false,
    stdin: "ignore",
    stdout: "ignore",
    stderr: "ignore",
    timeout: 30_000,
  });
  if (check.exitCode === 0) return;
  const lock = `${s.control}.lock`;
  try {
    mkdirSync(lock, { mode: 0o700 });
  } catch {
    try {
      // a crashed opener's
      if (Date.now() - statSync(lock).mtimeMs > 120_000) rmSync(lock, { recursive: true, force: true });
    } catch {
      // gone meanwhile
    }
    return;
  }
  try {
    rmSync(s.control, { force: true }); // a dead master's socket
    const errFile = `${s.control}.err`;
    rmSync(errFile, { force: true });
    const r = await execa(
      s.bin,
      [...s.base, "-o", "ControlMaster=yes", "-o", "ControlPersist=60", "-N", "-f", "--", s.target.host],
      {
        reject: false,
        stdin: "ignore",
        stdout: "ignore",
        stderr: { file: errFile },
        timeout: 60_000,
      },
    );
    if (r.exitCode !== 0) {
      let why = "";
      try {
        why = readFileSync(errFile, "utf8").trim();
      } catch {
        // none written
      }
      throw new Unreachable(s.target, why || (r.timedOut ? "timed out" : `ssh exited ${r.exitCode}`));
    }
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

// What ssh exits with when it, not the remote command, failed (connection, host key, login).
const SSH_FAILED = 255;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

// Run script on the remote host with args (quoted); input on its stdin. Throws Unreachable when
// the host cannot be reached or refuses (a changed host key among others).
export async function run(
  s: Ssh,
  script: string,
  args: readonly string[],
  opts: { input?: string | Buffer; inputFile?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  await ensureMaster(s);
  const r = await execa(
    s.bin,
    [...s.base, "-o", "ControlMaster=no", "-T", "--", s.target.host, remoteCommand(script, args)],
    {
      reject: false,
      ...(opts.input !== undefined
        ? { input: opts.input }
        : opts.inputFile
          ? { inputFile: opts.inputFile }
          : { stdin: "ignore" as const }),
      timeout: opts.timeoutMs ?? 120_000,
      encoding: "utf8",
      stripFinalNewline: false,
    },
  );
  const code = r.exitCode ?? -1;
  if (code === SSH_FAILED || r.timedOut) {
    masters.delete(s.control);
    throw new Unreachable(s.target, String(r.stderr).trim() || (r.timedOut ? "timed out" : "ssh failed"));
  }
  return { code, stdout: String(r.stdout), stderr: String(r.stderr) };
}

// The same, synchronously (for the contract's synchronous isAlive and find).
export function runSync(
  s: Ssh,
  script: string,
  args: readonly string[],
  timeoutMs = 60_000,
  input?: string,
): RunResult {
  const r = spawnSync(
    s.bin,
    [...s.base, "-o", "ControlMaster=no", "-T", "--", s.target.host, remoteCommand(script, args)],
    {
      ...(input !== undefined ? { input } : { stdio: ["ignore", "pipe", "pipe"] as const }),
      encoding: "utf8",
      timeout: timeoutMs,
    },
  );
  const code = r.status ?? -1;
  if (code === SSH_FAILED || r.error || r.signal)
    throw new Unreachable(s.target, (r.stderr ?? "").trim() || (r.error ? String(r.error.message) : "ssh failed"));
  return { code, stdout: r.stdout, stderr: r.stderr };
}

// Close the host's master connection (tests, and a scrubbed host's last cell).
export async function closeMaster(s: Ssh): Promise<void> {
  masters.delete(s.control);
  await execa(s.bin, [...s.base, "-O", "exit", "--", s.target.host], {
    reject: false,
    stdin: "ignore",
    stdout: "ignore",
    stderr: "ignore",
    timeout: 30_000,
  });
}
