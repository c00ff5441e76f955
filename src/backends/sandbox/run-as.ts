// Work in a cell's tree done as the cell's own uid, never as root: restoring a checkpoint and
// clearing dirs. A member may swap a directory for a symlink meanwhile, and an archive may carry
// any owner and mode (a setuid root file, a hard link): as the cell's uid, Lazarus can only do
// what the cell could do itself. Shared by the backends that run members as a per-cell host uid
// (sandbox, container).
import { closeSync, mkdirSync, openSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { restoreCheckpoint, verifyCheckpoint } from "../../checkpoints/checkpoint.js";
import { execa } from "../../util/exec.js";
import { LAYOUT_STAGE_SCRIPT, STAGE, setprivArgs, type StageMount } from "./argv.js";
import { handOver } from "./handover.js";

// The host tools it takes (util-linux).
export interface RunAsTools {
  unshare: string;
  setpriv: string;
}

export interface CellOwner {
  uid: number;
  gid: number;
}

// The environment of what runs as the cell's uid.
const RUN_AS_ENV = { LAZARUS_STAGE: STAGE, PATH: "/usr/sbin:/usr/bin:/sbin:/bin" };

// The mount points staging binds onto (empty dirs and files under STAGE on the host).
export function ensureMountPoints(mounts: StageMount[]): void {
  for (const m of mounts) {
    const at = path.join(STAGE, m.at);
    mkdirSync(m.dir ? at : path.dirname(at), { recursive: true, mode: 0o755 });
    if (!m.dir) closeSync(openSync(at, "a", 0o644));
  }
}

// A command prefix that runs the rest as the cell's uid (no capabilities) in a private mount
// namespace where the given dirs of the cell appear together under the returned directory.
export function runAsPrefix(
  owner: CellOwner,
  tools: RunAsTools,
  cellDir: string,
  dirs: readonly string[],
): { prefix: string[]; cellDir: string } {
  ensureMountPoints([{ src: cellDir, at: "d/0", dir: true }]);
  const stage = [
    tools.unshare,
    "--mount",
    "--propagation",
    "private",
    "/bin/sh",
    "-c",
    LAYOUT_STAGE_SCRIPT,
    "lazarus-stage",
    "d/0",
    ...dirs.flatMap((d) => [path.join(cellDir, d), d]),
    "--",
  ];
  return { prefix: [...stage, tools.setpriv, ...setprivArgs(owner.uid, owner.gid)], cellDir: `${STAGE}/d/0` };
}

// Extract a checkpoint's dirs into base as the cell's uid: files are the cell's, modes without
// setuid, setgid or what the umask takes (tar --no-same-owner --no-same-permissions).
export async function restoreAsCell(
  owner: CellOwner,
  tools: RunAsTools,
  base: string,
  file: string,
  dirs: readonly string[],
): Promise<void> {
  await verifyCheckpoint(file); // a corrupted archive is refused before anything is touched
  for (const d of dirs) {
    await mkdir(path.join(base, d), { recursive: true });
    await handOver(path.join(base, d), owner.uid, owner.gid, 0o770);
  }
  const as = runAsPrefix(owner, tools, base, dirs);
  await restoreCheckpoint(file, base, dirs, { runAs: as.prefix, env: RUN_AS_ENV, extractDir: as.cellDir });
}

// Empty dirs of base as the cell's uid, then remove them (empty by then).
export async function clearAsCell(
  owner: CellOwner,
  tools: RunAsTools,
  base: string,
  dirs: readonly string[],
): Promise<void> {
  const as = runAsPrefix(owner, tools, base, dirs);
  const [cmd, ...args] = as.prefix;
  await execa(
    cmd as string,
    [
      ...args,
      "/bin/sh",
      "-c",
      'for d in "$@"; do find "$d" -mindepth 1 -delete || exit 1; done',
      "lazarus-clear",
      ...dirs.map((d) => `${as.cellDir}/${d}`),
    ],
    { stdin: "ignore", env: RUN_AS_ENV, extendEnv: false },
  );
  for (const d of dirs) await rm(path.join(base, d), { recursive: true, force: true }); // empty now
}
