// What is mounted where (the kernel's mount table of Lazarus's own namespace) and which loop
// devices hold an image: read afresh each time, never remembered.
import { readFileSync } from "node:fs";
import { execa } from "../../util/exec.js";
import { LazarusError } from "../../util/errors.js";
import type { DiskTools } from "./host.js";

// mountinfo escapes space, tab, newline and backslash as \ooo.
const unescape = (s: string): string =>
  s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

// The mount points of this process's mount namespace.
export function mountPoints(): Set<string> {
  const out = new Set<string>();
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const at = line.split(" ")[4];
    if (at) out.add(unescape(at));
  }
  return out;
}

// Whether something is mounted at this path (as written: callers pass the paths they mount at).
export const mountedAt = (p: string): boolean => mountPoints().has(p);

// The loop devices backed by this image file (matched by device and inode, by losetup).
export async function loopsOf(t: DiskTools, image: string): Promise<string[]> {
  const r = await execa(t.losetup, ["--list", "--noheadings", "--output", "NAME", "--associated", image], {
    reject: false,
    stdin: "ignore",
    extendEnv: false,
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" },
  });
  if (r.exitCode !== 0) {
    const err = String(r.stderr).trim();
    if (/No such file/i.test(err)) return [];
    throw new LazarusError("DISK_FAILED", `cannot list the loop devices of ${image}: ${err}`);
  }
  return String(r.stdout)
    .split("\n")
    .map((s) => s.trim())
    .filter(Boolean);
}
