// Checkpoint archives on real files: zstd and gzip round trips through the process backend's
// restore, checkpoints made before compression was a choice, and corrupted archives refused.
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  closeSync,
  linkSync,
  openSync,
  writeSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { restoreReplacing } from "../../src/apply/restore.js";
import { ProcessBackend } from "../../src/backends/process.js";
import type { CellRecord } from "../../src/cells/record.js";
import { CHECKPOINT_DIRS, manifestName, takeCheckpoint, type Manifest } from "../../src/checkpoints/checkpoint.js";
import { cleanup, tempDir } from "../helpers.js";

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));
const NOW = Date.parse("2030-01-01T00:00:00Z");
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const backend = new ProcessBackend();
const rec = {} as CellRecord; // the process backend's restore reads nothing of the record

// A cell dir with a tree that exercises the archive: modes, binary and empty files, a long and a
// non-ASCII name, nested dirs, a symbolic link and a hard link.
function cellWithTree(): string {
  const cell = tempDir("lazarus-ckpt-");
  dirs.push(cell);
  const p = (...parts: string[]) => path.join(cell, ...parts);
  mkdirSync(p("project", "src", "deep", "er"), { recursive: true });
  mkdirSync(p("shared"), { recursive: true });
  mkdirSync(p("home", "allegro"), { recursive: true });
  writeFileSync(p("project", "src", "main.ts"), "export const x = 1;\n".repeat(500));
  writeFileSync(p("project", "run.sh"), "#!/bin/sh\necho hi\n");
  chmodSync(p("project", "run.sh"), 0o755);
  writeFileSync(p("project", "src", "deep", "er", "blob.bin"), randomBytes(300_000));
  writeFileSync(p("project", "empty"), "");
  writeFileSync(p("project", `${"n".repeat(150)}.txt`), "a name longer than the 100 bytes of a tar header");
  writeFileSync(p("project", "ünïcødé ☃.md"), "snow");
  writeFileSync(p("home", "allegro", "secret.md"), "private");
  chmodSync(p("home", "allegro", "secret.md"), 0o600);
  chmodSync(p("project", "src", "deep"), 0o750);
  writeFileSync(p("shared", "scratchpad.md"), "notes");
  symlinkSync("../shared/scratchpad.md", p("project", "notes-link"));
  linkSync(p("project", "src", "main.ts"), p("project", "main-hardlink.ts"));
  return cell;
}

// Every entry under the checkpointed dirs: type, permission bits and content or link target.
function tree(cell: string): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (rel: string) => {
    const abs = path.join(cell, rel);
    const st = lstatSync(abs);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out[rel] = `link -> ${readlinkSync(abs)}`;
    else if (st.isFile()) out[rel] = `file ${mode} ${sha(readFileSync(abs))}`;
    else if (st.isDirectory()) {
      out[rel] = `dir ${mode}`;
      for (const e of readdirSync(abs).sort()) visit(path.join(rel, e));
    } else out[rel] = "other";
  };
  for (const d of CHECKPOINT_DIRS) visit(d);
  return out;
}

const readManifest = (file: string) => JSON.parse(readFileSync(manifestName(file), "utf8")) as Manifest;

describe("checkpoint archives", () => {
  it.each([
    ["zstd", ".tar.zst", [0x28, 0xb5, 0x2f, 0xfd]],
    ["gzip", ".tar.gz", [0x1f, 0x8b]],
  ] as const)(
    "round-trip with %s: restored content is byte-identical and modes are kept",
    async (compression, ext, magic) => {
      const cell = cellWithTree();
      const before = tree(cell);
      const name = await takeCheckpoint(cell, "c", "test", NOW, async () => {}, compression);
      expect(name).toBe(`20300101T000000Z${ext}`);
      const file = path.join(cell, ".lazarus", "checkpoints", name);
      expect([...readFileSync(file).subarray(0, magic.length)]).toEqual(magic);
      const m = readManifest(file);
      expect(m).toMatchObject({
        formatVersion: 1,
        cell: "c",
        archive: name,
        compression,
        archiveSha256: sha(readFileSync(file)),
        archiveSize: lstatSync(file).size,
      });
      // every regular file is listed with the hash of its content, a hard link as its file
      const files = Object.fromEntries(m.files.map((f) => [f.path, f.sha256]));
      for (const [rel, what] of Object.entries(before))
        if (what.startsWith("file")) expect(files[rel], rel).toBe(what.split(" ")[2]);
      expect(m.files).toHaveLength(Object.values(before).filter((w) => w.startsWith("file")).length);
      expect(m.symlinks).toEqual([{ path: "project/notes-link", target: "../shared/scratchpad.md" }]);

      // replace: the cell's current dirs (changed meanwhile) give way to the checkpoint's
      writeFileSync(path.join(cell, "project", "src", "main.ts"), "changed");
      writeFileSync(path.join(cell, "project", "new-file"), "not in the checkpoint");
      chmodSync(path.join(cell, "project", "run.sh"), 0o644);
      await restoreReplacing(backend, rec, cell, file, CHECKPOINT_DIRS);
      expect(tree(cell)).toEqual(before);
      // and into an empty place
      const fresh = tempDir("lazarus-ckpt-fresh-");
      dirs.push(fresh);
      await backend.restore(rec, fresh, file, CHECKPOINT_DIRS);
      expect(tree(fresh)).toEqual(before);
    },
  );

  it("restores a checkpoint made before compression was a choice (tar -czf, a manifest without compression or archive hash)", async () => {
    const cell = cellWithTree();
    const before = tree(cell);
    const cps = path.join(cell, ".lazarus", "checkpoints");
    mkdirSync(cps, { recursive: true });
    const file = path.join(cps, "20290101T000000Z.tar.gz");
    await execa("tar", ["-czf", file, "-C", cell, ...CHECKPOINT_DIRS]);
    // the manifest exactly as the earlier code wrote it
    const files = Object.entries(before)
      .filter(([, w]) => w.startsWith("file"))
      .map(([p]) => ({
        path: p,
        size: lstatSync(path.join(cell, p)).size,
        sha256: sha(readFileSync(path.join(cell, p))),
      }));
    const legacy = {
      formatVersion: 1,
      cell: "c",
      takenAt: "2029-01-01T00:00:00.000Z",
      reason: "test",
      archive: "20290101T000000Z.tar.gz",
      files,
      symlinks: [{ path: "project/notes-link", target: "../shared/scratchpad.md" }],
    };
    writeFileSync(manifestName(file), JSON.stringify(legacy));
    const fresh = tempDir("lazarus-ckpt-legacy-");
    dirs.push(fresh);
    await backend.restore(rec, fresh, file, CHECKPOINT_DIRS);
    expect(tree(fresh)).toEqual(before);

    // without an archive hash, the per-file hashes still catch a manifest that does not match
    const wrong = {
      ...legacy,
      files: legacy.files.map((f) => (f.path === "project/src/main.ts" ? { ...f, sha256: "0".repeat(64) } : f)),
    };
    writeFileSync(manifestName(file), JSON.stringify(wrong));
    const other = tempDir("lazarus-ckpt-legacy-");
    dirs.push(other);
    await expect(backend.restore(rec, other, file, CHECKPOINT_DIRS)).rejects.toMatchObject({
      code: "RESTORE_MISMATCH",
      message: expect.stringContaining("project/src/main.ts does not match"),
    });
  });

  it.each(["zstd", "gzip"] as const)(
    "refuses a corrupted %s archive before extracting anything, and a replace deletes nothing",
    async (compression) => {
      const cell = cellWithTree();
      const name = await takeCheckpoint(cell, "c", "test", NOW, async () => {}, compression);
      const file = path.join(cell, ".lazarus", "checkpoints", name);
      const bytes = readFileSync(file);
      const mid = Math.floor(bytes.length / 2);
      bytes[mid] = (bytes[mid] as number) ^ 0xff; // one flipped byte in the middle
      writeFileSync(file, bytes);
      writeFileSync(path.join(cell, "project", "work-since"), "must survive a refused restore");
      const current = tree(cell);
      await expect(restoreReplacing(backend, rec, cell, file, CHECKPOINT_DIRS)).rejects.toMatchObject({
        code: "RESTORE_MISMATCH",
        message: expect.stringContaining("does not match the sha256 in its manifest"),
      });
      expect(tree(cell)).toEqual(current);
      const fresh = tempDir("lazarus-ckpt-bad-");
      dirs.push(fresh);
      await expect(backend.restore(rec, fresh, file, CHECKPOINT_DIRS)).rejects.toMatchObject({
        code: "RESTORE_MISMATCH",
      });
      expect(readdirSync(fresh)).toEqual([]); // nothing extracted
    },
  );

  it("refuses a manifest that names an unknown compression", async () => {
    const cell = cellWithTree();
    const name = await takeCheckpoint(cell, "c", "test", NOW, async () => {}, "zstd");
    const file = path.join(cell, ".lazarus", "checkpoints", name);
    writeFileSync(manifestName(file), JSON.stringify({ ...readManifest(file), compression: "lz4" }));
    await expect(restoreReplacing(backend, rec, cell, file, CHECKPOINT_DIRS)).rejects.toMatchObject({
      code: "RESTORE_FAILED",
      message: expect.stringContaining('unknown compression "lz4"'),
    });
  });

  it("lists a member's FIFO, device and host link without reading through them, and never hangs", async () => {
    const cell = cellWithTree();
    await execa("mkfifo", [path.join(cell, "project", "trap.fifo")]); // opening it to read would block
    symlinkSync("/etc/shadow", path.join(cell, "project", "host-secret"));
    const root = process.getuid?.() === 0;
    if (root) await execa("mknod", [path.join(cell, "project", "zero"), "c", "1", "5"]); // /dev/zero: reading it never ends
    const name = await takeCheckpoint(cell, "c", "test", NOW, async () => {}, "zstd");
    const m = readManifest(path.join(cell, ".lazarus", "checkpoints", name));
    expect(m.files.map((f) => f.path)).not.toContain("project/trap.fifo");
    expect(m.files.map((f) => f.path)).not.toContain("project/host-secret");
    expect(m.symlinks).toContainEqual({ path: "project/host-secret", target: "/etc/shadow" });
    const listing = await execa("tar", ["--zstd", "-tvf", path.join(cell, ".lazarus", "checkpoints", name)]);
    expect(listing.stdout).toMatch(/^p.* project\/trap\.fifo$/m); // archived as a FIFO, not read
    expect(listing.stdout).toMatch(/^l.* project\/host-secret -> \/etc\/shadow$/m);
    if (root) {
      expect(m.files.map((f) => f.path)).not.toContain("project/zero");
      expect(listing.stdout).toMatch(/^c.* project\/zero$/m);
    }
  });
});

// A file of size bytes with data only at the given offsets (the rest holes), made with truncate.
async function sparseFile(file: string, size: string, writes: [number, string][]): Promise<void> {
  writeFileSync(file, "");
  await execa("truncate", ["-s", size, file]);
  for (const [at, text] of writes) {
    const fd = openSync(file, "r+");
    writeSync(fd, text, at);
    closeSync(fd);
  }
}

const allocatedKiB = (file: string) => (lstatSync(file).blocks * 512) / 1024;

describe("sparse files and the size bound", () => {
  it("archives a sparse file as sparse, lists the sha256 of its whole content and restores it with its holes", async () => {
    const cell = cellWithTree();
    const big = path.join(cell, "project", "sparse.img");
    await sparseFile(big, "64M", [
      [5, "head"],
      [20 * 1024 * 1024, "middle"],
      [64 * 1024 * 1024 - 4, "tail"],
    ]);
    const before = tree(cell);
    const name = await takeCheckpoint(cell, "c", "test", NOW, async () => {}, "zstd", undefined, 1024 ** 3);
    const file = path.join(cell, ".lazarus", "checkpoints", name);
    // the tar holds the data and the map, not 64M of zeros
    const rawTar = await execa("zstd", ["-dc", file], { encoding: "buffer" });
    expect(rawTar.stdout.length).toBeLessThan(2 * 1024 * 1024);
    const m = readManifest(file);
    expect(m.files).toContainEqual({
      path: "project/sparse.img",
      size: 64 * 1024 * 1024,
      sha256: sha(readFileSync(big)),
    });
    expect(m.files.map((f) => f.path).some((p) => p.includes("GNUSparseFile"))).toBe(false);
    const fresh = tempDir("lazarus-ckpt-sparse-");
    dirs.push(fresh);
    await backend.restore(rec, fresh, file, CHECKPOINT_DIRS); // checks every file against the manifest
    expect(tree(fresh)).toEqual(before);
    expect(allocatedKiB(path.join(fresh, "project", "sparse.img"))).toBeLessThan(1024); // still sparse
  });

  it("refuses a 4T sparse file by its size before archiving anything, and keeps the earlier checkpoints", async () => {
    const cell = cellWithTree();
    const first = await takeCheckpoint(cell, "c", "test", NOW, async () => {}, "zstd", undefined, 1024 ** 3);
    await sparseFile(path.join(cell, "project", "huge.img"), "4T", [[0, "x"]]);
    const froze: boolean[] = [];
    const taking = takeCheckpoint(
      cell,
      "c",
      "test",
      NOW + 60_000,
      async (f) => void froze.push(f),
      "zstd",
      undefined,
      1024 ** 3,
    );
    await expect(taking).rejects.toMatchObject({
      code: "CHECKPOINT_TOO_LARGE",
      message: expect.stringMatching(/largest: project\/huge\.img, 4Ti\).*checkpoint\.maxSize 1Gi/s),
    });
    expect(froze).toEqual([]); // refused before the cell was even frozen
    expect(readdirSync(path.join(cell, ".lazarus", "checkpoints")).sort()).toEqual([first, manifestName(first)].sort());
  });

  it("stops tar as soon as the files it reads pass the bound (a file grown after the walk)", async () => {
    const cell = cellWithTree();
    // the freeze callback runs after the walk: the member grows its file there, as if not frozen
    const grow = async (frozen: boolean) => {
      if (frozen) await sparseFile(path.join(cell, "shared", "grown.img"), "4T", [[1, "y"]]);
    };
    await expect(takeCheckpoint(cell, "c", "test", NOW, grow, "zstd", undefined, 1024 ** 3)).rejects.toMatchObject({
      code: "CHECKPOINT_TOO_LARGE",
      message: expect.stringContaining("while tar read them (at shared/grown.img)"),
    });
    expect(readdirSync(path.join(cell, ".lazarus", "checkpoints"))).toEqual([]); // no partial archive
  });
});
