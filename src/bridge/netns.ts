// A member's network namespace, nameable without a pid: a file under /run/lazarus/netns/ (a bind
// mount of the namespace, as `unshare --net=FILE` makes it), one per state dir, cell incarnation
// and member. The backend makes it before the member starts (the member joins it: sandbox with
// `nsenter --net=FILE`, container with `--network ns:FILE`) and it outlives the member's
// restarts, so the listeners host services made in it (bridge/listen.ts) stay valid. It goes at
// the member's removal and the cell's close; a file whose incarnation or member is gone is swept.
import { createHash } from "node:crypto";
import { existsSync, statfsSync, statSync } from "node:fs";
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { execa } from "../util/exec.js";
import { LazarusError } from "../util/errors.js";
import { RUN_ROOT } from "../backends/sandbox/argv.js";

export const NETNS_ROOT = `${RUN_ROOT}/netns`;
const NSFS_MAGIC = 0x6e736673;

// Brings "lo" up in the namespace it runs in (SIOCSIFFLAGS: UP|LOOPBACK|RUNNING), where `ip` is missing.
const PERL_LO_UP =
  'use Socket; socket(my $s, PF_INET, SOCK_DGRAM, 0) or die "socket: $!\\n"; ioctl($s, 0x8914, pack("a16 s x22", "lo", 0x49)) or die "lo up: $!\\n";';

// This state dir's namespace files: short, distinct per state dir.
export function netnsDir(stateRoot: string): string {
  const digest = createHash("sha256").update(path.resolve(stateRoot)).digest("hex").slice(0, 16);
  return path.join(NETNS_ROOT, digest);
}

// The namespace file of one member of one cell incarnation (home names are DNS labels).
export function memberNetnsFile(stateRoot: string, cellUid: string, home: string): string {
  return path.join(netnsDir(stateRoot), `${cellUid}.${home}`);
}

// The namespace's inode when file is a live namespace file (so a listener can tell a namespace
// made again at the same path from the one it listens in), else undefined.
export function netnsInode(file: string): number | undefined {
  try {
    return statfsSync(file).type === NSFS_MAGIC ? statSync(file).ino : undefined;
  } catch {
    return undefined;
  }
}

function tool(name: string): string {
  for (const d of ["/usr/bin", "/bin", "/usr/sbin", "/sbin"])
    if (existsSync(path.join(d, name))) return path.join(d, name);
  return name;
}
export const NSENTER = tool("nsenter");
const UNSHARE = tool("unshare");
const IP = tool("ip");

async function run(file: string, args: string[], what: string): Promise<void> {
  const r = await execa(file, args, { reject: false, stdin: "ignore", timeout: 30_000 });
  if (r.exitCode !== 0)
    throw new LazarusError("BRIDGE_FAILED", `${what}: ${String(r.stderr).trim() || `exit ${r.exitCode}`}`);
}

// The member's namespace made if it is not (an empty file left by a crash is made again), with
// its loopback up (bubblewrap does not bring up a namespace it joins). Idempotent; its inode.
export async function ensureNetns(file: string): Promise<number> {
  if (netnsInode(file) === undefined) {
    // RUN_ROOT first, world-traversable: a recursive mkdir would give it the 0700 of netns/, and
    // then no cell uid could reach the staging and view dirs under it
    await mkdir(RUN_ROOT, { recursive: true, mode: 0o755 });
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await execa("umount", [file], { reject: false, stdin: "ignore" });
    await writeFile(file, "", { mode: 0o600 });
    await run(UNSHARE, [`--net=${file}`, "--", "/bin/true"], `cannot make the network namespace ${file}`);
  }
  const lo = existsSync(IP) ? [IP, "link", "set", "lo", "up"] : ["/usr/bin/perl", "-e", PERL_LO_UP];
  await run(NSENTER, [`--net=${file}`, "--", ...lo], `cannot bring up the loopback of ${file}`);
  const ino = netnsInode(file);
  if (ino === undefined) throw new LazarusError("BRIDGE_FAILED", `${file} is not a network namespace after unshare`);
  return ino;
}

// Unmount and remove one namespace file (the namespace itself ends with the last process or
// socket in it).
export async function removeNetns(file: string): Promise<void> {
  await execa("umount", [file], { reject: false, stdin: "ignore" });
  await rm(file, { force: true });
}

// Remove this state dir's namespace files that no member of a live cell names: keep(uid, home)
// says which are still wanted. What a crash between a close and its clean-up left goes here.
export async function sweepNetns(
  stateRoot: string,
  keep: (cellUid: string, home: string) => boolean,
): Promise<string[]> {
  const dir = netnsDir(stateRoot);
  const names = await readdir(dir).catch(() => [] as string[]);
  const gone: string[] = [];
  for (const n of names) {
    const dot = n.lastIndexOf(".");
    if (dot > 0 && keep(n.slice(0, dot), n.slice(dot + 1))) continue;
    await removeNetns(path.join(dir, n));
    gone.push(n);
  }
  return gone;
}

// Every namespace file of one cell incarnation goes (its close).
export function removeCellNetns(stateRoot: string, cellUid: string): Promise<string[]> {
  return sweepNetns(stateRoot, (uid) => uid !== cellUid);
}
