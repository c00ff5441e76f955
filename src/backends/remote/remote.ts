// The remote backend: a cell's tree (project, shared, homes, logs) and its members live on another
// host, reached over SSH (see ssh.ts: pinned host key, multiplexed). Lazarus's own state (records,
// ledger, journal, lock, checkpoints) stays here. A member runs detached on the remote host as the
// SSH user, in its own session and process group, with its spawn id and cell in its environment
// (so a crashed apply finds it again) and a small sh wrapper writing its exit code to
// logs/<home>.exit. Members are not contained beyond that (like the process backend's).
import { readFileSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { cellPaths, portfolioFile } from "../../cells/layout.js";
import path from "node:path";
import type { CellRecord, MemberRecord } from "../../cells/record.js";
import type { RemoteTarget } from "../../config/types.js";
import { LazarusError } from "../../util/errors.js";
import {
  memberRef,
  type Backend,
  type MemberRef,
  type SessionSpawn,
  type StartSpec,
  type Started,
  type TarSource,
} from "../backend.js";
import { memberEnv } from "../env.js";
import {
  ALIVE,
  FIND,
  LAYOUT,
  LOGS,
  PORTFOLIO,
  PROBE,
  RECEIVE,
  RESTORE_SWAP,
  SCRUB,
  SIGNAL,
  SIZE,
  START,
  STOP,
  TAR,
} from "./scripts.js";
import { Unreachable, describe, remoteCommand, run, runSync, ssh, type Ssh } from "./ssh.js";
import { writeFileAtomic } from "../../util/fsx.js";
import { rawTar, verifyCheckpoint } from "../../checkpoints/checkpoint.js";

// How much of each member log collectLogs keeps (the end of it): the remote host has no log pump
// and so no rotation; and the names it takes.
const LOG_CAP = 16 * 1024 * 1024;
const LOG_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\.log(\.[0-9]{1,3})?$/;

// The same wrapper as the process backend's: the exit code to LAZARUS_EXIT_FILE (its mtime is the
// exit time), SIGHUP left to the command.
const WRAPPER =
  'trap ":" HUP; "$@"; code=$?; echo "$code" > "$LAZARUS_EXIT_FILE.tmp" && mv -f "$LAZARUS_EXIT_FILE.tmp" "$LAZARUS_EXIT_FILE"; exit "$code"';

export class RemoteBackend implements Backend {
  readonly name = "remote";
  private readonly conns = new Map<string, Ssh>();

  constructor(
    private readonly stateRoot: string,
    private readonly hostEnv: NodeJS.ProcessEnv = process.env,
  ) {}

  private target(rec: Pick<CellRecord, "name" | "remote">): RemoteTarget {
    if (!rec.remote) throw new LazarusError("BUG", `remote cell ${rec.name} has no host recorded`);
    return rec.remote;
  }

  private conn(rec: Pick<CellRecord, "name" | "remote">): Ssh {
    const t = this.target(rec);
    const key = JSON.stringify(t);
    let c = this.conns.get(key);
    if (!c) {
      c = ssh(this.stateRoot, t, this.hostEnv);
      this.conns.set(key, c);
    }
    return c;
  }

  private cellArgs(rec: CellRecord): string[] {
    return [this.target(rec).root, rec.name, rec.uid];
  }

  // The tree on the remote host, and the host answering at all (an unreachable host fails here).
  // The credentials manifest goes along (a rotation reaches the remote copy here too).
  async prepareCell(rec: CellRecord, cellDir: string): Promise<void> {
    this.remember(rec);
    const creds = await readFile(cellPaths(cellDir).credentials).catch(() => undefined);
    const r = await run(
      this.conn(rec),
      LAYOUT,
      [...this.cellArgs(rec), creds ? "1" : "0", ...rec.members.map((m) => m.home)],
      creds ? { input: creds } : {},
    );
    const dir = r.stdout.trim().split("\n").pop() ?? "";
    if (r.code === 0 && dir.startsWith("/")) rec.remoteDir = dir;
    else
      throw new LazarusError(
        "REMOTE_FAILED",
        `cannot lay out cell ${rec.name} on ${describe(this.target(rec))}: ${r.stderr.trim() || `exit ${r.code}`}`,
      );
  }

  async start(rec: CellRecord, spec: StartSpec): Promise<Started> {
    this.remember(rec);
    const t = this.target(rec);
    // The member's paths are the remote host's (absolute: prepareCell recorded the tree's).
    const rdir = rec.remoteDir;
    if (!rdir)
      throw new LazarusError("BUG", `remote cell ${rec.name} has no remote dir recorded (prepareCell was not run)`);
    const home = `${rdir}/home/${spec.homeName}`;
    const env = memberEnv(
      {
        ...spec,
        cellDir: rdir,
        home,
        credentialsFile: `${rdir}/.lazarus/secrets/credentials.json`,
        exitFile: `${rdir}/logs/${spec.homeName}.exit`,
        ...(spec.portfolioFile ? { portfolioFile: `${home}/.lazarus/portfolio.json` } : {}),
      },
      { PATH: "/usr/local/bin:/usr/bin:/bin", ...pick(this.hostEnv, ["LANG", "TZ"]) },
    );
    delete env.VIRTUAL_ENV;
    const credentials = await readFile(spec.credentialsFile).catch(() => Buffer.from("{}\n"));
    const portfolio = spec.portfolioFile ? (await readFile(spec.portfolioFile, "utf8").catch(() => "")).trim() : "";
    const assignments = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    const args = [
      ...this.cellArgs(rec),
      spec.homeName,
      spec.spawnId,
      portfolio,
      ...assignments,
      "/bin/sh",
      "-c",
      WRAPPER,
      "lazarus-member",
      ...spec.command,
    ];
    const r = await run(this.conn(rec), START, args, { input: credentials });
    const m = /^started (\d+) (\d+|-)$/m.exec(r.stdout);
    if (r.code !== 0 || !m)
      throw new LazarusError(
        "SPAWN_FAILED",
        `cannot start ${spec.identity} in cell ${spec.cell} on ${describe(t)}: ${r.stderr.trim() || `exit ${r.code}`} (command ${JSON.stringify(spec.command)})`,
      );
    return { pid: Number(m[1]), startTime: m[2] === "-" ? undefined : Number(m[2]) };
  }

  // One ssh call (over the master connection); an unreachable host proves nothing is alive here,
  // so it throws rather than answer false (observe marks such cells unknown beforehand).
  isAlive(m: MemberRef): boolean {
    if (!m.pid || m.startTime === undefined || !m.spawnId) return false;
    const rec = this.recOf(m.cell);
    if (!rec) return false;
    const r = runSync(this.conn(rec), ALIVE, [String(m.pid), String(m.startTime), m.spawnId, m.cell]);
    return r.stdout.trim() === "1";
  }

  // isAlive and find are given only the cell's name: its record is the one this backend was last
  // shown, else the one on disk here (Lazarus's own: a remote cell's members cannot write it).
  private readonly recs = new Map<string, CellRecord>();
  remember(rec: CellRecord): void {
    this.recs.set(rec.name, rec);
  }

  private recOf(cell: string): CellRecord | undefined {
    const known = this.recs.get(cell);
    if (known) return known;
    for (const place of ["cells", "graveyard"]) {
      try {
        const rec = JSON.parse(
          readFileSync(cellPaths(path.join(this.stateRoot, place, cell)).record, "utf8"),
        ) as CellRecord;
        if (rec.backend === "remote" && rec.remote) return { ...rec, name: cell };
      } catch {
        // not there
      }
    }
    return undefined;
  }

  find(cell: string, spawnId: string): Started | undefined {
    const rec = this.recOf(cell);
    if (!rec) return undefined;
    const r = runSync(this.conn(rec), FIND, [spawnId, cell]);
    const m = /^(\d+) (\d+)$/m.exec(r.stdout);
    return m ? { pid: Number(m[1]), startTime: Number(m[2]) } : undefined;
  }

  async stop(rec: CellRecord, m: MemberRecord, timeoutMs: number): Promise<void> {
    this.remember(rec);
    const refs: MemberRef[] = [];
    if (m.status === "starting" && m.spawnId) {
      const found = this.find(rec.name, m.spawnId);
      if (found) refs.push({ cell: rec.name, pid: found.pid, startTime: found.startTime, spawnId: m.spawnId });
    }
    if (m.pid) refs.push(memberRef(rec.name, m));
    for (const ref of refs) {
      if (!ref.pid || ref.startTime === undefined || !ref.spawnId) continue;
      const r = await run(
        this.conn(rec),
        STOP,
        [String(ref.pid), String(ref.startTime), ref.spawnId, rec.name, String(timeoutMs)],
        { timeoutMs: timeoutMs + 120_000 },
      );
      if (r.code === 4)
        throw new LazarusError(
          "STOP_FAILED",
          `process group ${ref.pid} of cell ${rec.name} on ${describe(this.target(rec))} survived SIGKILL`,
        );
      if (r.code !== 0)
        throw new LazarusError(
          "STOP_FAILED",
          `cannot stop ${m.identity} of cell ${rec.name} on ${describe(this.target(rec))}: ${r.stderr.trim() || `exit ${r.code}`}`,
        );
    }
  }

  // The member's portfolio file is written here first (update-portfolio): its remote copy is
  // brought up to date before the signal that tells the member to read it.
  signal(rec: CellRecord, m: MemberRecord, sig: NodeJS.Signals): boolean {
    this.remember(rec);
    if (!m.pid || m.startTime === undefined || !m.spawnId) return false;
    const c = this.conn(rec);
    let portfolio = "";
    try {
      portfolio = readFileSync(portfolioFile(cellPaths(path.join(this.stateRoot, "cells", rec.name)), m.home), "utf8");
    } catch {
      // none (removed)
    }
    runSync(c, PORTFOLIO, [...this.cellArgs(rec), m.home], 60_000, portfolio);
    const r = runSync(c, SIGNAL, [sig.replace(/^SIG/, ""), String(m.pid), String(m.startTime), m.spawnId, rec.name]);
    return r.stdout.trim() === "1";
  }

  // SIGSTOP/SIGCONT each member's group on the remote host (one call).
  async freeze(rec: CellRecord, frozen: boolean): Promise<void> {
    this.remember(rec);
    const members = rec.members
      .filter((m) => m.pid && m.startTime !== undefined && m.spawnId)
      .flatMap((m) => [String(m.pid), String(m.startTime), m.spawnId as string, rec.name]);
    if (members.length === 0) return;
    const r = await run(this.conn(rec), SIGNAL, [frozen ? "STOP" : "CONT", ...members]);
    if (r.code !== 0)
      throw new LazarusError(
        "FREEZE_FAILED",
        `cannot ${frozen ? "freeze" : "thaw"} cell ${rec.name} on ${describe(this.target(rec))}: ${r.stderr.trim()}`,
      );
  }

  // The members' groups are all Lazarus tracks (as with the process backend).
  async stopCell(): Promise<number[]> {
    return [];
  }

  // The members' logs, from the remote tree into the cell's local logs dir (a closed cell keeps them
  // in its graveyard entry and archive, as local cells do): the last LOG_CAP bytes of each file.
  // Only names a member's log has; each written afresh here, never through a link.
  async collectLogs(rec: CellRecord, logsDir: string): Promise<void> {
    const r = await run(this.conn(rec), LOGS, [...this.cellArgs(rec), String(LOG_CAP)], { timeoutMs: 600_000 });
    const lines = r.stdout.split("\n");
    if (r.code !== 0 || !lines.includes("lazarus-logs-end"))
      throw new LazarusError(
        "REMOTE_FAILED",
        `cannot copy the logs of cell ${rec.name} from ${describe(this.target(rec))}: ${r.stderr.trim() || `exit ${r.code}`}`,
      );
    await mkdir(logsDir, { recursive: true, mode: 0o700 });
    for (let i = 0; i + 1 < lines.length && lines[i] !== "lazarus-logs-end"; i += 2) {
      const name = lines[i] as string;
      if (!LOG_NAME.test(name)) continue; // not a log a member of ours writes
      await writeFileAtomic(path.join(logsDir, name), Buffer.from(lines[i + 1] as string, "base64"), 0o640);
    }
  }

  // The cell is scrubbed: its tree on the remote host goes.
  async releaseCell(rec: CellRecord): Promise<void> {
    const r = await run(this.conn(rec), SCRUB, this.cellArgs(rec));
    if (r.code !== 0)
      throw new LazarusError(
        "REMOTE_FAILED",
        `cannot remove cell ${rec.name} from ${describe(this.target(rec))}: ${r.stderr.trim() || `exit ${r.code}`}`,
      );
  }

  // The tar of the cell's dirs as the remote host makes it, for a checkpoint taken here: the
  // command writing it on stdout, and a check of the bytes received against the remote's sha256.
  tarSource(rec: CellRecord, dirs: readonly string[]): TarSource {
    const c = this.conn(rec);
    return {
      // the size walk on the remote host, before the cell is frozen and before its tar is written there
      size: async (walked, maxBytes) => {
        const r = await run(c, SIZE, [...this.cellArgs(rec), String(maxBytes), ...walked], { timeoutMs: 600_000 });
        const m = /^(over|size) (\d+) (\d+)$/m.exec(r.stdout);
        if (r.code !== 0 || !m)
          throw new LazarusError(
            "CHECKPOINT_FAILED",
            `checkpoint of cell ${rec.name}: cannot measure its tree on ${describe(this.target(rec))}: ${r.stderr.trim() || `exit ${r.code}`}`,
          );
        return {
          over: m[1] === "over",
          bytes: Number(m[2]),
          ...(Number(m[3]) > 0 ? { largest: { path: "", size: Number(m[3]) } } : {}),
        };
      },
      file: c.bin,
      args: [
        ...c.base,
        "-o",
        "ControlMaster=no",
        "-T",
        "--",
        c.target.host,
        remoteCommand(TAR, [...this.cellArgs(rec), ...dirs]),
      ],
      check: (stderr, sha256) => {
        const m = /lazarus-sha256 ([0-9a-f]{64})/.exec(stderr);
        if (!m)
          throw new LazarusError(
            "CHECKPOINT_FAILED",
            `checkpoint of cell ${rec.name}: ${describe(this.target(rec))} reported no sha256 of its tar`,
          );
        if (m[1] !== sha256)
          throw new LazarusError(
            "CHECKPOINT_FAILED",
            `checkpoint of cell ${rec.name}: the tar copied from ${describe(this.target(rec))} does not match its sha256 there`,
          );
      },
    };
  }

  // Send the checkpoint's dirs to the remote tree: the archive is checked here (its sha256), its
  // tar sent and checked there, extracted into a staging dir, every file checked against the
  // manifest, and only then swapped in. base (a local dir) holds nothing of a remote cell.
  async restore(rec: CellRecord, _base: string, file: string, dirs: readonly string[]): Promise<void> {
    this.remember(rec);
    const manifest = await verifyCheckpoint(file);
    const { tar, sha256 } = await rawTar(file, manifest.compression);
    const c = this.conn(rec);
    const r = await run(c, RECEIVE, [...this.cellArgs(rec), sha256, ...dirs], { input: tar, timeoutMs: 600_000 });
    if (r.code !== 0)
      throw new LazarusError(
        "RESTORE_FAILED",
        `cannot restore ${path.basename(file)} into cell ${rec.name} on ${describe(this.target(rec))}: ${r.stderr.trim() || `exit ${r.code}`}`,
      );
    const lines = manifest.files
      .filter((f) => dirs.some((d) => f.path.startsWith(`${d}/`)) && !/[\n\\]/.test(f.path))
      .map((f) => `${f.sha256}  ${f.path}\n`)
      .join("");
    const s = await run(c, RESTORE_SWAP, [...this.cellArgs(rec), ...dirs], { input: lines, timeoutMs: 600_000 });
    if (s.code !== 0)
      throw new LazarusError(
        "RESTORE_MISMATCH",
        `restore of ${path.basename(file)} into cell ${rec.name} on ${describe(this.target(rec))}: ${s.stderr.trim() || `exit ${s.code}`}`,
      );
  }

  async clear(): Promise<void> {
    // restore swaps on the remote host: nothing of it is staged here
  }

  // Whether the host answers (status, tests).
  async probe(rec: CellRecord): Promise<void> {
    const r = await run(this.conn(rec), PROBE, []);
    if (!r.stdout.includes("lazarus-remote ok"))
      throw new Unreachable(this.target(rec), r.stderr.trim() || "unexpected answer");
  }

  // Shell and exec on a remote cell are not opened by Lazarus yet: ssh to the host as its user.
  async session(rec: CellRecord): Promise<SessionSpawn> {
    throw new LazarusError(
      "NOT_SUPPORTED",
      `cell ${rec.name}: shell and exec are not supported on the remote backend yet; ssh to ${rec.remote?.host ?? "its host"} (docs/backends.md)`,
    );
  }
}

function pick(env: NodeJS.ProcessEnv, keys: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of keys) if (env[k]) out[k] = env[k] as string;
  return out;
}
