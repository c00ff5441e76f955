// A cell's disk quota: a sparse ext4 image (<cell>/.lazarus/disk.img) loop-mounted at
// <cell>/.lazarus/disk, whose project/, shared/ and home/ are bound over the cell's own. Members
// write only there, so a full image gives them ENOSPC while Lazarus's files (.lazarus/: the
// record, logs, checkpoints) stay on the host's filesystem. Used by the backends that enforce
// spec.resources.disk (sandbox, container); see docs/isolation.md.
//
// Every step is idempotent and read from the world (the mount table, the image file), so a crash
// at any point converges on the next call: an image exists only once formatted (made as a temp
// file, renamed in), a cell's dirs are moved into it once (a marker inside the image says so),
// and the dirs under the binds are emptied and closed (root, 0700) so no member ever writes to the
// host's filesystem when a mount is missing.
import { existsSync, realpathSync, statfsSync } from "node:fs";
import { chmod, chown, lstat, mkdir, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "../../util/exec.js";
import { LazarusError, errorMessage } from "../../util/errors.js";
import { failpoint } from "../../util/failpoint.js";
import { diskTools, type DiskTools } from "./host.js";
import { loopsOf, mountedAt } from "./mounts.js";

// The member-writable dirs of a cell, kept on its image.
export const DISK_DIRS = ["project", "shared", "home"] as const;
const FILLED = ".lazarus-filled"; // in the image's root: the cell's dirs were moved in

export interface DiskPaths {
  image: string; // the ext4 image file (root, 0600)
  mount: string; // where the image is mounted (root, 0700: no member sees its root)
}

const real = (p: string): string => {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
};

export const diskPaths = (cellDir: string): DiskPaths => ({
  image: path.join(cellDir, ".lazarus", "disk.img"),
  mount: path.join(cellDir, ".lazarus", "disk"),
});

async function run(t: DiskTools, file: keyof DiskTools, args: string[], what: string): Promise<string> {
  const r = await execa(t[file], args, {
    reject: false,
    stdin: "ignore",
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" },
    extendEnv: false,
  });
  if (r.exitCode !== 0)
    throw new LazarusError(
      "DISK_FAILED",
      `${what}: ${file} exited ${r.exitCode}: ${String(r.stderr || r.stdout)
        .trim()
        .split("\n")
        .slice(-3)
        .join(" ")}`,
    );
  return String(r.stdout);
}

// A sparse image of `bytes`, formatted, renamed in whole. No blocks reserved for root: the quota is
// what members can use.
async function makeImage(t: DiskTools, image: string, bytes: number): Promise<void> {
  const tmp = `${image}.tmp`;
  await rm(tmp, { force: true });
  await writeFile(tmp, "", { mode: 0o600 });
  await run(t, "truncate", ["-s", String(bytes), tmp], `cannot size the disk image ${tmp}`);
  failpoint("disk:sized");
  await run(
    t,
    "mkfs",
    [
      "-q",
      "-F",
      "-t",
      "ext4",
      "-m",
      "0",
      "-E",
      "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
      "-L",
      "lazarus-cell",
      tmp,
    ],
    `cannot format the disk image ${tmp}`,
  );
  await rename(tmp, image);
}

// Mount the image at its mount point, reusing the loop device it is already attached to (a
// member's mount namespace can hold it after the host's mount went away): one image is never
// behind two loop devices at once, which would corrupt it.
async function mountImage(t: DiskTools, p: DiskPaths, fresh: boolean): Promise<void> {
  await mkdir(p.mount, { recursive: true, mode: 0o700 });
  const opts = "nodev,nosuid,discard";
  const [loop] = fresh ? [] : await loopsOf(t, p.image); // a file just made has no loop device
  if (loop)
    await run(t, "mount", ["-t", "ext4", "-o", opts, loop, p.mount], `cannot mount ${loop} (${p.image}) at ${p.mount}`);
  else
    await run(
      t,
      "mount",
      ["-t", "ext4", "-o", `loop,${opts}`, p.image, p.mount],
      `cannot mount the disk image ${p.image} at ${p.mount}`,
    );
}

// Copy the cell's dirs (what the layout made, or what the cell wrote before it had an image) into
// the image, once, owners, modes and links as they are (cp -a never follows a link). Only while
// nothing of the cell runs: idle() says so.
async function fill(
  t: DiskTools,
  cellDir: string,
  p: DiskPaths,
  idle: () => boolean | Promise<boolean>,
): Promise<void> {
  if (existsSync(path.join(p.mount, FILLED))) return;
  if (!(await idle()))
    throw new LazarusError(
      "DISK_BUSY",
      `cannot move the files of ${cellDir} onto its disk image while its members run; stop them first`,
    );
  const from: string[] = [];
  for (const d of DISK_DIRS) {
    await rm(path.join(p.mount, d), { recursive: true, force: true }); // a copy a crash cut short
    const st = await lstat(path.join(cellDir, d)).catch(() => undefined);
    if (st?.isDirectory() && !mountedAt(path.join(cellDir, d))) from.push(path.join(cellDir, d));
    else await mkdir(path.join(p.mount, d), { mode: 0o755 });
  }
  if (from.length)
    await run(
      t,
      "cp",
      ["-a", "--no-dereference", "--", ...from, `${p.mount}/`],
      `cannot copy the files of ${cellDir} onto its disk image`,
    );
  await writeFile(path.join(p.mount, FILLED), "", { mode: 0o600 });
}

// The host's dir under a bind: empty, root's, closed, so nothing is written there unmounted.
async function closeUnder(dir: string): Promise<void> {
  if (mountedAt(dir)) return;
  const st = await lstat(dir).catch(() => undefined);
  if (st && !st.isDirectory()) await rm(dir, { force: true });
  if (st?.isDirectory())
    for (const e of await readdir(dir)) await rm(path.join(dir, e), { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chown(dir, 0, 0);
  await chmod(dir, 0o700);
}

// Make (once), mount and bind the cell's disk: idempotent, and what a restart after a reboot
// needs before any member starts. A bind that shows a dir no longer in the image's (a restore
// swapped it) is bound again. Grows the image when bytes is larger than it is. idle: whether
// nothing of the cell runs (needed only to move its files in, the first time).
export async function ensureDisk(
  cellDir: string,
  bytes: number,
  idle: () => boolean | Promise<boolean>,
): Promise<void> {
  const t = diskTools();
  const dir = realpathSync(cellDir); // the mount table names real paths
  const p = diskPaths(dir);
  const fresh = !existsSync(p.image);
  if (fresh) await makeImage(t, p.image, bytes);
  else if ((await stat(p.image)).size < bytes || existsSync(`${p.image}.grow`)) {
    if (!(await idle()))
      throw new LazarusError(
        "DISK_BUSY",
        `cannot grow the disk image of ${cellDir} while its members run; stop them first`,
      );
    await growOffline(t, dir, p, bytes);
  }
  if (!mountedAt(p.mount)) await mountImage(t, p, fresh);
  await chmod(p.mount, 0o711); // the root of the image: traversable (bwrap opens the dirs by name), not listable
  await fill(t, dir, p, idle);
  const binds: string[] = [];
  for (const d of DISK_DIRS) {
    const at = path.join(dir, d);
    const src = path.join(p.mount, d);
    if (mountedAt(at)) {
      if ((await stat(at)).ino === (await stat(src)).ino) continue;
      while (mountedAt(at)) await run(t, "umount", ["-l", at], `cannot unmount ${at}`);
    }
    await closeUnder(at);
    binds.push(src, at);
  }
  // One shell for the binds (each is one mount(8) call; a failed one stops the rest).
  if (binds.length)
    await run(
      t,
      "sh",
      [
        "-c",
        'while [ $# -gt 0 ]; do "$0" --bind -o nodev,nosuid "$1" "$2" || exit 1; shift 2; done',
        t.mount,
        ...binds,
      ],
      `cannot bind the disk image's dirs over ${dir}`,
    );
}

// Grow the image while nothing has it mounted: a marker (disk.img.grow) first, so a crash between
// the file's growth and the filesystem's is finished by the next call; then the file, a check and
// the filesystem (offline: online growth needs CAP_SYS_RESOURCE, which some hosts' root lacks).
async function growOffline(t: DiskTools, dir: string, p: DiskPaths, bytes: number): Promise<void> {
  const marker = `${p.image}.grow`;
  await writeFile(marker, String(bytes), { mode: 0o600 });
  for (const at of [...DISK_DIRS.map((d) => path.join(dir, d)), p.mount])
    while (mountedAt(at)) await run(t, "umount", ["-l", at], `cannot unmount ${at}`);
  await detach(t, p.image);
  // The kernel lets a loop device go once its filesystem is gone from every namespace (late
  // under load): wait for that, never for a member (the caller made sure none runs).
  for (let i = 0; i < 600 && (await loopsOf(t, p.image)).length; i++) await sleep(100);
  if ((await loopsOf(t, p.image)).length)
    throw new LazarusError(
      "DISK_BUSY",
      `cannot grow ${p.image}: something still holds its loop device (a process of the cell in another mount namespace?)`,
    );
  if ((await stat(p.image)).size < bytes)
    await run(t, "truncate", ["-s", String(bytes), p.image], `cannot grow ${p.image}`);
  const fsck = await execa(t.e2fsck, ["-f", "-p", p.image], {
    reject: false,
    stdin: "ignore",
    extendEnv: false,
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" },
  });
  if ((fsck.exitCode ?? 8) > 1)
    throw new LazarusError(
      "DISK_FAILED",
      `cannot grow ${p.image}: e2fsck exited ${fsck.exitCode}: ${String(fsck.stdout || fsck.stderr)
        .trim()
        .split("\n")
        .slice(-2)
        .join(" ")}`,
    );
  await run(t, "resize2fs", [p.image], `cannot grow the filesystem of ${p.image}`);
  await rm(marker, { force: true });
}

// Whether the cell's disk is fully in place (image mounted, every dir bound).
export function diskMounted(cellDir: string): boolean {
  const dir = real(cellDir);
  return mountedAt(diskPaths(dir).mount) && DISK_DIRS.every((d) => mountedAt(path.join(dir, d)));
}

// Refuse to run a member of a cell whose disk is not in place (never onto the host's filesystem).
export function assertDiskMounted(cell: string, cellDir: string): void {
  if (!diskMounted(cellDir))
    throw new LazarusError(
      "DISK_NOT_MOUNTED",
      `the disk image of cell ${cell} is not mounted at ${diskPaths(cellDir).mount}; members start only on it (lazarus apply mounts it again)`,
    );
}

export interface DiskUsage {
  mounted: boolean;
  size: number; // bytes of the filesystem
  avail: number; // bytes members can still write
}

// How full the cell's disk is (statfs of the mounted image), or only that it is not mounted.
export function diskUsage(cellDir: string): DiskUsage {
  const dir = real(cellDir);
  const p = diskPaths(dir);
  if (!mountedAt(p.mount)) return { mounted: false, size: 0, avail: 0 };
  try {
    const s = statfsSync(p.mount);
    return {
      mounted: DISK_DIRS.every((d) => mountedAt(path.join(dir, d))),
      size: s.blocks * s.bsize,
      avail: s.bavail * s.bsize,
    };
  } catch {
    return { mounted: false, size: 0, avail: 0 };
  }
}

// Detach the image's loop devices (one still in use is detached once its last user is gone).
async function detach(t: DiskTools, image: string): Promise<void> {
  for (const loop of await loopsOf(t, image)) {
    try {
      await run(t, "losetup", ["-d", loop], `cannot detach ${loop}`);
    } catch (err) {
      if (!/No such device|not configured|No such device or address/i.test(errorMessage(err))) throw err;
    }
  }
}

// Take the cell's tree off its image and delete the image: the binds, the image's mount, its loop
// device, the file. Each step only when still there, so a kill at any step converges on the next
// call. The underlying dirs are left empty (the cell's tree is deleted or laid out anew after).
export async function releaseDisk(cellDir: string): Promise<void> {
  const dir = real(cellDir);
  const p = diskPaths(dir);
  if (
    !existsSync(p.image) &&
    !existsSync(`${p.image}.tmp`) &&
    !mountedAt(p.mount) &&
    DISK_DIRS.every((d) => !mountedAt(path.join(dir, d)))
  )
    return;
  const t = diskTools();
  for (const at of [...DISK_DIRS.map((d) => path.join(dir, d)), p.mount]) {
    // Lazy: a process left in some namespace cannot keep the host's mount; the superblock goes
    // with the last user, and the loop device (autoclear) with it.
    while (mountedAt(at)) await run(t, "umount", ["-l", at], `cannot unmount ${at}`);
  }
  failpoint("disk:unmounted");
  await detach(t, p.image);
  failpoint("disk:detached");
  await rm(p.image, { force: true });
  await rm(`${p.image}.tmp`, { force: true });
  await rm(p.mount, { recursive: true, force: true });
}

// A backend's placeData: the disk in place when the record has one, and where its dirs are.
export async function placeDisk(
  rec: { name: string; disk?: { bytes: number } },
  cellDir: string,
  idle: () => boolean | Promise<boolean>,
): Promise<string | undefined> {
  if (!rec.disk) return undefined;
  await ensureDisk(cellDir, rec.disk.bytes, idle);
  assertDiskMounted(rec.name, cellDir);
  return diskPaths(real(cellDir)).mount;
}
