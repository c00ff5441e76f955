// Benchmark: what a per-cell disk quota costs (docs/isolation.md, "Disk quotas"), measured side
// by side with what a cell costs without one. Usage (as root, with loop devices and mkfs.ext4):
//   npx tsx bench/disk-quota.ts [cells=50] [size=10Gi]
// For each cell, in turn: a plain tree (mkdir project/ shared/ home/a), the quota's whole set-up
// (ensureDisk: sparse image, mkfs.ext4, loop mount, three binds), the same with the image
// allocated up front (fallocate, the candidate not chosen), and the teardown (releaseDisk). Then
// the loop devices the host had before and after, and how long attaching one took as they grew.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ensureDisk, releaseDisk } from "../src/backends/disk/image.js";
import { diskHost } from "../src/backends/disk/host.js";
import { parseMemory } from "../src/config/quantity.js";

const N = Number(process.argv[2] ?? 50);
const SIZE = parseMemory(process.argv[3] ?? "10Gi") as number;
if (diskHost().problems.length) {
  console.log(`skipped: ${diskHost().problems.join("; ")}`);
  process.exit(0);
}
const root = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-disk-"));
const loops = () => readdirSync("/dev").filter((e) => /^loop\d+$/.test(e)).length;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

function layout(dir: string): void {
  for (const d of ["project", "shared/artifacts", "home/a", ".lazarus"])
    mkdirSync(path.join(dir, d), { recursive: true });
}

const plain: number[] = [],
  sparse: number[] = [],
  full: number[] = [],
  teardown: number[] = [],
  attach: number[] = [];
const loopsBefore = loops();
const cells: string[] = [];
try {
  for (let i = 0; i < N; i++) {
    let t0 = process.hrtime.bigint();
    layout(path.join(root, `plain-${i}`));
    plain.push(ms(t0));

    const dir = path.join(root, `cell-${i}`);
    layout(dir);
    t0 = process.hrtime.bigint();
    await ensureDisk(dir, SIZE, () => true);
    sparse.push(ms(t0));
    cells.push(dir);

    // The candidate not chosen: the image's blocks reserved on the host up front.
    const img = path.join(root, `full-${i}.img`);
    const mnt = path.join(root, `full-${i}`);
    mkdirSync(mnt);
    t0 = process.hrtime.bigint();
    execFileSync("fallocate", ["-l", String(Math.min(SIZE, 1024 ** 3)), img]);
    execFileSync("mkfs.ext4", ["-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", img]);
    execFileSync("mount", ["-o", "loop", img, mnt]);
    full.push(ms(t0));
    const a0 = process.hrtime.bigint();
    execFileSync("umount", [mnt]);
    attach.push(ms(a0));
    rmSync(img);
  }
  const loopsPeak = loops();
  for (const dir of cells) {
    const t0 = process.hrtime.bigint();
    await releaseDisk(dir);
    teardown.push(ms(t0));
  }
  const fmt = (xs: number[]) => `median ${median(xs).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms`;
  console.log(
    `cells: ${N}, quota ${process.argv[3] ?? "10Gi"} (sparse), on ${execFileSync("findmnt", ["-n", "-o", "FSTYPE,OPTIONS", "-T", root]).toString().trim()}`,
  );
  console.log(`plain tree:              ${fmt(plain)}`);
  console.log(`quota set-up (chosen):   ${fmt(sparse)}  ratio ${(median(sparse) / median(plain)).toFixed(0)}x`);
  console.log(`fallocate ≤1Gi + mount:  ${fmt(full)}`);
  console.log(`teardown (releaseDisk):  ${fmt(teardown)}`);
  console.log(
    `loop devices: ${loopsBefore} before, ${loopsPeak} with ${N} cells mounted (made on demand via /dev/loop-control)`,
  );
  console.log(
    `host bytes per sparse image: ${execFileSync("du", ["-sk", root]).toString().split("\t")[0]} KiB for the whole bench dir after teardown`,
  );
} finally {
  for (const dir of cells) await releaseDisk(dir).catch((e) => console.error(String(e)));
  rmSync(root, { recursive: true, force: true });
}
