// A checkpoint is data a member wrote (or anyone who can put a file in the archive): restoring one
// must leave only files of the cell's own uid, without setuid or setgid bits, whatever owners and
// modes the archive carries, hard links included. Checked for each backend that runs members as a
// per-cell host uid, with a crafted archive restored by the backend itself (real tar, setpriv and
// mount namespace; root needed).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  chownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Backend } from "../../src/backends/backend.js";
import { ContainerBackend } from "../../src/backends/container/container.js";
import { containerEngine } from "../../src/backends/container/engine.js";
import { SandboxBackend } from "../../src/backends/sandbox/sandbox.js";
import { sandboxHost } from "../../src/backends/sandbox/host.js";
import type { CellRecord } from "../../src/cells/record.js";
import { hostSettings } from "../../src/host/settings.js";
import { tempDir, uidBand } from "../helpers.js";

const BAND = uidBand("backends/restore-as-cell");
const CELL_UID = BAND.first;
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// An archive (gzip) of project/ holding a setuid root file, a hard link to it, a setgid dir of
// root's and a file of another uid, with the manifest a checkpoint has beside it.
function craftedCheckpoint(): string {
  const src = tempDir("lazarus-crafted-");
  const out = tempDir("lazarus-crafted-cp-");
  dirs.push(src, out);
  const p = (rel: string) => path.join(src, "project", rel);
  mkdirSync(p("sgid"), { recursive: true });
  writeFileSync(p("suid"), "#!/bin/sh\nid\n");
  chownSync(p("suid"), 0, 0);
  chmodSync(p("suid"), 0o4755);
  linkSync(p("suid"), p("link"));
  chownSync(p("sgid"), 0, 0);
  chmodSync(p("sgid"), 0o2777);
  writeFileSync(p("sgid/theirs"), "theirs\n");
  chownSync(p("sgid/theirs"), 1, 1);
  chmodSync(p("sgid/theirs"), 0o6644);
  const file = path.join(out, "20300101T000000Z.tar.gz");
  const tar = spawnSync("tar", ["--gzip", "-cf", file, "-C", src, "project"], { encoding: "utf8" });
  expect(tar.status, tar.stderr).toBe(0);
  const listing = spawnSync("tar", ["--gzip", "-tvf", file], { encoding: "utf8" }).stdout;
  expect(listing).toMatch(/-rwsr-xr-x root\/root .* project\/suid/);
  expect(listing).toMatch(/project\/link link to project\/suid/);
  const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
  const files = ["project/link", "project/sgid/theirs", "project/suid"].map((f) => {
    const b = readFileSync(path.join(src, f));
    return { path: f, size: b.length, sha256: sha(b) };
  });
  const archive = readFileSync(file);
  const manifest = {
    formatVersion: 1,
    cell: "c",
    takenAt: "2030-01-01T00:00:00.000Z",
    reason: "crafted",
    archive: path.basename(file),
    compression: "gzip",
    archiveSha256: sha(archive),
    archiveSize: archive.length,
    files,
    symlinks: [],
  };
  writeFileSync(file.replace(/\.tar\.gz$/, ".manifest.json"), JSON.stringify(manifest));
  return file;
}

const record = {
  name: "c",
  uid: "0123456789abcdef",
  containerUid: { uid: CELL_UID, gid: CELL_UID },
  sandbox: { uid: CELL_UID, gid: CELL_UID, cgroup: "lazarus-test/c" },
} as unknown as CellRecord;

const root = process.getuid?.() === 0 ? undefined : "restoring as a cell's uid needs root";
const sandboxSkip =
  root ??
  (sandboxHost().problems.length
    ? `sandbox backend unavailable here: ${sandboxHost().problems.join("; ")}`
    : undefined);
const containerSkip =
  root ??
  (containerEngine().runAs
    ? undefined
    : `container restore unavailable here: ${containerEngine().problems.join("; ")}`);
for (const [name, why] of [
  ["sandbox", sandboxSkip],
  ["container", containerSkip],
] as const)
  if (why) console.warn(`SKIPPED (${name}): ${why}`);

const backends: [string, string | undefined, (state: string) => Backend][] = [
  ["container", containerSkip, (state) => new ContainerBackend(state, hostSettings({ LAZARUS_UID_RANGE: BAND.range }))],
  ["sandbox", sandboxSkip, (state) => new SandboxBackend(state, hostSettings({ LAZARUS_UID_RANGE: BAND.range }))],
];

describe.each(backends)("restoring a crafted checkpoint (%s backend)", (_name, skip, make) => {
  it.skipIf(skip)(
    "leaves every file the cell's own, without setuid or setgid bits, hard links included",
    async () => {
      const file = craftedCheckpoint();
      const base = tempDir("lazarus-restore-");
      const state = tempDir("lazarus-restore-state-");
      dirs.push(base, state);
      await make(state).restore?.(record, base, file, ["project"]);
      for (const rel of ["project", "project/suid", "project/link", "project/sgid", "project/sgid/theirs"]) {
        const st = lstatSync(path.join(base, rel));
        expect({ rel, uid: st.uid, gid: st.gid, special: (st.mode & 0o7000).toString(8) }).toEqual({
          rel,
          uid: CELL_UID,
          gid: CELL_UID,
          special: "0",
        });
      }
      expect(readFileSync(path.join(base, "project", "link"), "utf8")).toBe("#!/bin/sh\nid\n");
      expect(statSync(path.join(base, "project", "suid")).mode & 0o777).toBe(0o755 & ~process.umask());
    },
    60_000,
  );
});
