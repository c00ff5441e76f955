// What disk quotas need from this host, found once per process: root, loop devices, mkfs.ext4
// and util-linux. Each gap said in words with what to do.
import { existsSync } from "node:fs";
import { LazarusError } from "../../util/errors.js";
import { which } from "../../util/which.js";

export interface DiskTools {
  mkfs: string;
  mount: string;
  umount: string;
  losetup: string;
  truncate: string;
  resize2fs: string;
  cp: string;
  sh: string;
  e2fsck: string;
}

const SYSTEM = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];
let cached: { tools?: DiskTools; problems: string[] } | undefined;

// The tools, or the reasons this host cannot give cells a disk quota.
export function diskHost(): { tools?: DiskTools; problems: string[] } {
  if (cached) return cached;
  const problems: string[] = [];
  const find = (cmd: string, pkg: string): string => {
    const p = which(cmd, "", SYSTEM);
    if (!p) problems.push(`${cmd} is not installed (apt-get install ${pkg})`);
    return p ?? "";
  };
  const tools: DiskTools = {
    mkfs: find("mkfs.ext4", "e2fsprogs"),
    resize2fs: find("resize2fs", "e2fsprogs"),
    mount: find("mount", "mount"),
    umount: find("umount", "mount"),
    losetup: find("losetup", "mount"),
    truncate: find("truncate", "coreutils"),
    cp: find("cp", "coreutils"),
    sh: find("sh", "dash"),
    e2fsck: find("e2fsck", "e2fsprogs"),
  };
  if (process.platform !== "linux") problems.push("disk quotas need Linux");
  if (process.getuid?.() !== 0) problems.push("Lazarus must run as root to mount cell disk images");
  if (!existsSync("/dev/loop-control"))
    problems.push("no /dev/loop-control (modprobe loop, or give the host loop devices)");
  cached = problems.length ? { problems } : { tools, problems };
  return cached;
}

export function diskTools(): DiskTools {
  const h = diskHost();
  if (!h.tools)
    throw new LazarusError(
      "DISK_UNAVAILABLE",
      `cell disk quotas cannot be enforced on this host: ${h.problems.join("; ")}`,
    );
  return h.tools;
}
