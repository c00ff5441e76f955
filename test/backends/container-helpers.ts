// Helpers for tests of the container backend: whether this host's engine can run a container,
// the test image (built locally from a static busybox: no registry is needed), and cleanup of a
// state dir's containers by the cell-incarnation label Lazarus puts on them (never by pattern).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, copyFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { containerEngine } from "../../src/backends/container/engine.js";
import { LABEL_CELL_UID } from "../../src/backends/container/argv.js";
import { isAlive, readRecord, recordedPids, waitFor } from "../helpers.js";

export const IMAGE = "localhost/lazarus-test:busybox";
export const engine = containerEngine();

function engineRun(args: string[], input?: Buffer) {
  return spawnSync(engine.bin as string, args, {
    encoding: "utf8",
    timeout: 300_000,
    ...(input ? { input } : { stdio: ["ignore", "pipe", "pipe"] }),
  });
}

// The image from /bin/busybox (busybox-static), with every applet as a link, unless present.
function ensureImage(): string | undefined {
  if (engineRun(["image", "inspect", "--format", "{{.Id}}", IMAGE]).status === 0) return undefined;
  const busybox = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
  if (!busybox) return "no busybox to build the test image from (apt-get install busybox-static)";
  const root = mkdtempSync(path.join(tmpdir(), "lazarus-image-"));
  try {
    mkdirSync(path.join(root, "bin"));
    copyFileSync(busybox, path.join(root, "bin", "busybox"));
    chmodSync(path.join(root, "bin", "busybox"), 0o755);
    const list = spawnSync(busybox, ["--list"], { encoding: "utf8" });
    for (const a of String(list.stdout)
      .split("\n")
      .filter((x) => x && x !== "busybox"))
      symlinkSync("busybox", path.join(root, "bin", a));
    const tar = spawnSync("tar", ["-C", root, "-c", "."], { maxBuffer: 64 << 20 });
    if (tar.status !== 0) return `cannot pack the test image: ${String(tar.stderr)}`;
    const r = engineRun(["import", "-q", "-", IMAGE], tar.stdout);
    if (r.status !== 0) return `cannot import the test image: ${String(r.stderr).trim()}`;
    return undefined;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

function probe(): string | undefined {
  if (engine.problems.length) return `container backend unavailable here: ${engine.problems.join("; ")}`;
  const image = ensureImage();
  if (image) return `container backend unavailable here: ${image}`;
  const r = engineRun(["run", "--rm", "--network", "none", "--pull", "never", IMAGE, "true"]);
  if (r.status !== 0)
    return `container backend unavailable here: ${engine.kind} cannot run a container (${String(r.stderr).trim().split("\n").slice(-1)[0]}); see docs/backends.md`;
  return undefined;
}

// Why container tests cannot run here (printed by the skipping suite), or undefined.
export const skipReason = probe();
if (skipReason) console.warn(`SKIPPED: ${skipReason}`);

// The incarnation ids of every cell record under a state dir (live and graveyard).
function cellUids(state: string): string[] {
  const out: string[] = [];
  for (const place of ["cells", "graveyard"]) {
    const root = path.join(state, place);
    if (!existsSync(root)) continue;
    for (const name of readdirSync(root)) {
      try {
        out.push(readRecord(path.join(root, name)).uid);
      } catch {
        // no record
      }
    }
  }
  return out;
}

// Containers (any state) carrying a cell incarnation's label.
export function containersOf(uids: string[]): string[] {
  const out: string[] = [];
  for (const u of uids) {
    const r = engineRun(["ps", "-a", "--format", "{{.Names}}", "--filter", `label=${LABEL_CELL_UID}=${u}`]);
    out.push(...String(r.stdout).split("\n").filter(Boolean));
  }
  return out;
}

// Kill a state dir's recorded supervisors, then remove its cells' containers. uids: also these
// incarnations (cells whose records are gone by now, e.g. scrubbed). Supervisors first, and dead
// before the containers go: a supervisor outliving its container writes the member's exit file
// into the cell's logs dir, racing the caller's removal of the tree (ENOTEMPTY).
export async function cleanupContainers(state: string, uids: string[] = []): Promise<void> {
  const live = recordedPids(state).filter((p) => isAlive(p.pid, p.startTime));
  for (const p of live) {
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  await waitFor(() => live.every((p) => !isAlive(p.pid, p.startTime)), 30_000);
  const names = containersOf([...new Set([...cellUids(state), ...uids])]);
  if (names.length) engineRun(["rm", "-f", ...names]);
}
