// Cleanup of the disk images a test's cells made (src/backends/disk/): every mount under the test's
// own state dir is unmounted (deepest first) and every loop device backed by an image file under
// it is detached. Nothing else: loop devices and mounts the test did not make are never touched.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, realpathSync } from "node:fs";
import path from "node:path";
import { diskHost } from "../../src/backends/disk/host.js";

export const diskSkipReason = diskHost().problems.length
  ? `disk quotas unavailable here: ${diskHost().problems.join("; ")}`
  : undefined;
if (diskSkipReason) console.warn(`SKIPPED: ${diskSkipReason}`);

const unescape = (s: string): string =>
  s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

// Mount points at or under dir, deepest first.
export function mountsUnder(dir: string): string[] {
  const root = realpathSync(dir);
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => unescape(l.split(" ")[4] ?? ""))
    .filter((m) => m === root || m.startsWith(`${root}/`))
    .sort((a, b) => b.length - a.length);
}

// Files named *.img or *.img.tmp under dir (not following links).
export function imagesUnder(dir: string): string[] {
  const out: string[] = [];
  const visit = (d: string): void => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) visit(p);
      else if (e.isFile() && /\.img(\.tmp)?$/.test(e.name)) out.push(p);
    }
  };
  visit(dir);
  return out;
}

// The loop devices backed by this file.
export function loopsOf(image: string): string[] {
  try {
    return execFileSync("losetup", ["--list", "--noheadings", "--output", "NAME", "--associated", image], {
      encoding: "utf8",
    })
      .split("\n")
      .map((s) => s.trim())
      .filter(Boolean);
  } catch {
    return [];
  }
}

// Unmount and detach what the cells under dir made; call in afterAll (also after a failure).
export function cleanupDisks(dir: string): void {
  if (!existsSync(dir)) return;
  for (let i = 0; i < 3; i++) for (const m of mountsUnder(dir)) execFileSync("umount", ["-l", m], { stdio: "ignore" });
  for (const img of imagesUnder(dir))
    for (const loop of loopsOf(img)) execFileSync("losetup", ["-d", loop], { stdio: "ignore" });
}
