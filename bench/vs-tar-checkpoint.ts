// Benchmark: `lazarus checkpoint CELL` (the real CLI, on real applied cells) against the system
// tar on the same tree: `tar -czf` and `tar -c | zstd`.
// Usage: npx tsx bench/vs-tar-checkpoint.ts [rounds=7] [--mb 100] [--files 3400] [--cli PATH] [--legacy]
//   --cli PATH  the lazarus CLI to measure (default: this checkout's dist/cli.js)
//   --legacy    a CLI from before checkpoint.compression: one cell without the field (gzip)
// A ~100 MB, ~3,400-file project is generated (deterministically: seeded) into each cell's
// project/: text sources that compress, and some random binary files. Then, round by round, each
// contender runs once, in an order that rotates every round (the machine is shared and noisy:
// every ratio is taken within a round, and the medians of those ratios are printed).
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

const argv = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const ROUNDS = Number(argv.find((a, i) => /^\d+$/.test(a) && !argv[i - 1]?.startsWith("--")) ?? 7);
const MB = Number(flag("--mb") ?? 100);
const FILES = Number(flag("--files") ?? 3400);
const CLI = path.resolve(flag("--cli") ?? path.join(import.meta.dirname, "..", "dist", "cli.js"));
const LEGACY = argv.includes("--legacy");

const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
for (const cmd of ["tar", "gzip", "zstd"]) {
  if (!has(cmd)) {
    console.log(`skipped: the peer tool ${cmd} is not installed (apt-get install ${cmd})`);
    process.exit(0);
  }
}

// A small seeded PRNG (mulberry32), so every run generates the same tree.
let seed = 0x1a2a3a;
function rand(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;

const WORDS =
  "const let function return if else for while await async import export from type interface class new this throw try catch finally string number boolean undefined null true false map filter reduce push length path file dir cell member checkpoint state record plan apply observe ledger journal lock spawn signal archive restore manifest sha256 size mode owner label policy".split(
    " ",
  );
function textFile(bytes: number): Buffer {
  const lines: string[] = [];
  let n = 0;
  while (n < bytes) {
    const indent = "  ".repeat(Math.floor(rand() * 4));
    const words = Array.from({ length: 3 + Math.floor(rand() * 9) }, () => pick(WORDS));
    const line = `${indent}${words.join(" ")}${rand() < 0.3 ? ` // ${Math.floor(rand() * 1e6).toString(36)}` : ""};`;
    lines.push(line);
    n += line.length + 1;
  }
  return Buffer.from(lines.join("\n")).subarray(0, bytes);
}
function binaryFile(bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i += 4) b.writeUInt32LE((rand() * 4294967296) >>> 0, Math.min(i, bytes - 4));
  return b;
}

// 90% of the files are text (70% of the bytes), 10% binary (30% of the bytes).
function generate(dir: string): { files: number; bytes: number } {
  const total = MB * 1024 * 1024;
  const nBin = Math.round(FILES * 0.1);
  const nText = FILES - nBin;
  const textBytes = Math.floor((total * 0.7) / nText);
  const binBytes = Math.floor((total * 0.3) / nBin);
  let bytes = 0;
  for (let i = 0; i < FILES; i++) {
    const bin = i % 10 === 9;
    const sub = path.join(dir, `pkg${i % 40}`, bin ? "assets" : `mod${i % 7}`);
    mkdirSync(sub, { recursive: true });
    const size = Math.max(64, Math.floor((bin ? binBytes : textBytes) * (0.5 + rand())));
    writeFileSync(path.join(sub, bin ? `blob${i}.bin` : `file${i}.ts`), bin ? binaryFile(size) : textFile(size));
    bytes += size;
  }
  return { files: FILES, bytes };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function timed(cmd: string, args: string[]): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}): ${r.stderr?.toString()}`);
  return ms;
}

const root = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-ckpt-"));
const config = path.join(root, "config");
const state = path.join(root, "state");
const peerOut = path.join(root, "peer");
mkdirSync(path.join(config, "cells.d"), { recursive: true });
mkdirSync(peerOut);
const cells: { name: string; compression?: string }[] = LEGACY
  ? [{ name: "ckpt-legacy" }]
  : [
      { name: "ckpt-gzip", compression: "gzip" },
      { name: "ckpt-zstd", compression: "zstd" },
    ];
const doc = (c: (typeof cells)[number]) =>
  [
    "apiVersion: lazarus/v1",
    "kind: Cell",
    "metadata:",
    `  name: ${c.name}`,
    "spec:",
    `  project: Org/bench#1`,
    "  owner: human:alexander",
    "  backend: process",
    "  ttl: 24h",
    `  checkpoint: {keep: 1000${c.compression ? `, compression: ${c.compression}` : ""}}`,
    "  members:",
    "    - identity: human:alexander",
    "      role: director",
  ].join("\n");
writeFileSync(path.join(config, "cells.d", "bench.yaml"), `${cells.map(doc).join("\n---\n")}\n`);
const common = ["--config", config, "--state-dir", state];
execFileSync("node", [CLI, "apply", "--yes", ...common], { stdio: ["ignore", "ignore", "inherit"] });

const cellDir = (name: string) => path.join(state, "cells", name);
const first = cells[0]?.name as string;
const gen = generate(path.join(cellDir(first), "project"));
for (const c of cells.slice(1))
  execFileSync("cp", ["-a", path.join(cellDir(first), "project", "."), path.join(cellDir(c.name), "project")]);
const treeDir = cellDir(first); // the peers archive the same dirs of the same tree
const dirs = ["project", "shared", "home"];

type Contender = { label: string; run: () => number; cleanup: () => void; output: () => string[] };
const cpDir = (name: string) => path.join(cellDir(name), ".lazarus", "checkpoints");
const contenders: Contender[] = [
  ...cells.map((c) => ({
    label: `lazarus checkpoint (${c.compression ?? "legacy gzip"})`,
    run: () => timed("node", [CLI, "checkpoint", c.name, ...common]),
    cleanup: () => {
      for (const f of readdirSync(cpDir(c.name))) rmSync(path.join(cpDir(c.name), f), { force: true });
    },
    output: () =>
      readdirSync(cpDir(c.name))
        .filter((f) => /\.tar\.(gz|zst)$/.test(f))
        .map((f) => path.join(cpDir(c.name), f)),
  })),
  {
    label: "tar -czf",
    run: () => timed("tar", ["-czf", path.join(peerOut, "p.tar.gz"), "-C", treeDir, ...dirs]),
    cleanup: () => rmSync(path.join(peerOut, "p.tar.gz"), { force: true }),
    output: () => [path.join(peerOut, "p.tar.gz")],
  },
  {
    label: "tar -c | zstd -T0 -3",
    run: () =>
      timed("sh", [
        "-c",
        'tar -cf - -C "$1" project shared home | zstd -T0 -3 -q -c > "$2"',
        "sh",
        treeDir,
        path.join(peerOut, "p.tar.zst"),
      ]),
    cleanup: () => rmSync(path.join(peerOut, "p.tar.zst"), { force: true }),
    output: () => [path.join(peerOut, "p.tar.zst")],
  },
];

const sizes: Record<string, number> = {};
const times: Record<string, number[]> = Object.fromEntries(contenders.map((c) => [c.label, []]));
const rounds: Record<string, number>[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const round: Record<string, number> = {};
  for (let k = 0; k < contenders.length; k++) {
    const c = contenders[(k + r) % contenders.length] as Contender;
    c.cleanup();
    const ms = c.run();
    round[c.label] = ms;
    times[c.label]?.push(ms);
    if (r === 0) {
      sizes[c.label] = c.output().reduce((n, f) => n + statSync(f).size, 0);
    }
  }
  rounds.push(round);
  console.error(
    `round ${r + 1}/${ROUNDS}: ${Object.entries(round)
      .map(([k, v]) => `${k} ${(v / 1000).toFixed(2)} s`)
      .join(", ")}`,
  );
}
for (const c of contenders) c.cleanup();

const ratio = (a: string, b: string) => median(rounds.map((r) => (r[a] as number) / (r[b] as number)));
const ratios: Record<string, number> = {};
for (const c of cells) {
  const l = `lazarus checkpoint (${c.compression ?? "legacy gzip"})`;
  ratios[`${l} / tar -czf`] = ratio(l, "tar -czf");
  ratios[`${l} / tar -c | zstd -T0 -3`] = ratio(l, "tar -c | zstd -T0 -3");
}
console.log(
  JSON.stringify(
    {
      tree: { files: gen.files, mb: Math.round(gen.bytes / 1048576) },
      rounds: ROUNDS,
      node: process.version,
      cpus: os.cpus().length,
      medianSeconds: Object.fromEntries(
        Object.entries(times).map(([k, v]) => [k, Number((median(v) / 1000).toFixed(3))]),
      ),
      archiveMB: Object.fromEntries(Object.entries(sizes).map(([k, v]) => [k, Number((v / 1048576).toFixed(1))])),
      medianRatios: Object.fromEntries(Object.entries(ratios).map(([k, v]) => [k, Number(v.toFixed(3))])),
    },
    null,
    2,
  ),
);
rmSync(root, { recursive: true, force: true });
