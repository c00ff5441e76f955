// The sandbox backend: each member in bubblewrap (own mount, pid, ipc, uts, user and — unless the
// cell opts into the host's — network namespaces) as its cell's own unprivileged uid, inside a
// per-member cgroup under a per-cell one, so limits hold and stopping kills everything it started.
import { realpathSync, statSync, type Stats } from "node:fs";
import { chmod, chown, lstat, mkdir, readdir } from "node:fs/promises";
import { execa } from "../../util/exec.js";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  NO_CONFIG_DIR,
  type Backend,
  type MemberRef,
  type MemberSpec,
  type SessionSpawn,
  type SessionSpec,
  type StartSpec,
  type Started,
} from "../backend.js";
import { scriptPath, sessionCommand } from "../session.js";
import type { CellRecord, MemberRecord } from "../../cells/record.js";
import type { Resources, Role } from "../../config/types.js";
import { withDefaults } from "../../host/limits.js";
import type { HostSettings } from "../../host/settings.js";
import { memberEnv } from "../env.js";
import { spawnSupervised } from "../spawn.js";
import { findLeader, isAlive, ownsProcess } from "../../host/proc.js";
import { LazarusError, errorMessage } from "../../util/errors.js";
import {
  CELL_ROOT,
  CONFIG_INSIDE,
  RUN_DIR,
  STAGE,
  execArgv,
  sandboxArgv,
  sandboxHome,
  stageView,
  type SandboxView,
  type Tools,
} from "./argv.js";
import { ensureEtcView } from "./etc.js";
import { Cgroup, type CgroupMode } from "./cgroup.js";
import { sandboxHost } from "./host.js";
import { claimUid, releaseUid } from "./uids.js";
import { forgetCellEgress, syncCellEgress } from "../../egress/cells.js";
import { proxyEnv } from "../../egress/member.js";
import { dropCellBridges, readyBridge } from "../../bridge/member.js";
import { handOver } from "./handover.js";
import { clearAsCell, ensureMountPoints, restoreAsCell } from "./run-as.js";
import { placeDisk, releaseDisk } from "../disk/image.js";
import {
  cellViewDir,
  copyConfigFiles,
  dropCellView,
  syncCellView,
  viewConfigDir,
  viewMemberDir,
  viewSecretsDir,
} from "./view-files.js";

// Where the sandbox keeps what members must see read-only: .lazarus/members/<home>/.
export const memberRunDir = (cellDir: string, home: string): string => path.join(cellDir, ".lazarus", "members", home);

export interface SandboxFacts {
  uid: number;
  gid: number;
  cgroup: string; // relative cgroup path of the cell, e.g. lazarus/c1-0123abcd
}

export async function realDir(p: string, mode: number): Promise<void> {
  await mkdir(p, { recursive: true });
  const st = await lstat(p);
  if (!st.isDirectory())
    throw new LazarusError(
      "NOT_A_DIRECTORY",
      `${p} is not a directory (a planted ${st.isSymbolicLink() ? "symlink" : "file"}?); move it away`,
    );
  if (st.uid !== 0 || st.gid !== 0) await chown(p, 0, 0);
  if ((st.mode & 0o7777) !== mode) await chmod(p, mode);
}

// A cell's tree laid out for members that run as its own uid: Lazarus's dirs traversable but not
// listable, project/, shared/ and home/ (and each home) the cell's, the credentials file 0400 its.
export async function handCellTo(cellDir: string, uid: number, gid: number): Promise<void> {
  // Traversable, not listable: bwrap opens the member's dirs by name as the cell's uid.
  await realDir(cellDir, 0o711);
  await realDir(path.join(cellDir, ".lazarus"), 0o711);
  await realDir(path.join(cellDir, ".lazarus", "secrets"), 0o711);
  await realDir(path.join(cellDir, ".lazarus", "members"), 0o711);
  // project/, shared/ and home/ are the cell's own (no member sees home/ itself, only its home).
  for (const d of ["project", "shared", "home"]) {
    await mkdir(path.join(cellDir, d), { recursive: true });
    await handOver(path.join(cellDir, d), uid, gid, 0o770);
  }
  await handOver(path.join(cellDir, "shared", "artifacts"), uid, gid);
  await handOver(path.join(cellDir, "shared", "scratchpad.md"), uid, gid);
  for (const e of await readdir(path.join(cellDir, "home")))
    await handOver(path.join(cellDir, "home", e), uid, gid, 0o700);
  const creds = path.join(cellDir, ".lazarus", "secrets", "credentials.json");
  const st = await lstat(creds).catch(() => undefined);
  if (st?.isFile()) await handOver(creds, uid, gid, 0o400);
}

// Whether a uid that owns none of the path can reach it: every directory on the way lets others
// pass, and the path itself lets others in (a dir) or read (a file).
export function reachableByOthers(p: string): boolean {
  try {
    const real = realpathSync(p);
    const parts = real.split("/").filter(Boolean);
    for (let i = 0; i < parts.length; i++) {
      const dir = `/${parts.slice(0, i).join("/")}`;
      if ((statSync(dir).mode & 0o001) === 0) return false;
    }
    const st = statSync(real);
    return (st.mode & (st.isDirectory() ? 0o001 : 0o004)) !== 0;
  } catch {
    return false;
  }
}

function statOrUndefined(p: string): Stats | undefined {
  try {
    return statSync(p);
  } catch {
    return undefined;
  }
}

// The files and dirs of the config dir a command names (./agent.sh, resolved to absolute paths).
// The config dir is the committer's, who is not trusted: a symbolic link in it is taken only when
// it resolves inside the config dir, and then its target is (a link to a host file or to
// /proc/self/root would otherwise show the host's files). A file is copied into the view and
// shown under /run/lazarus/config (its host path would show in mountinfo); a dir, and a file
// larger than CONFIG_COPY_MAX, is bound read-only at its own path.
export interface ConfigBind {
  arg: string; // the command's argument that names it
  src: string; // its real path
  rel: string; // relative to the config dir
  dir: boolean;
  size: number;
}

// The largest config-dir file a member's view gets a copy of (the copies live in /run, often RAM).
export const CONFIG_COPY_MAX = 1024 * 1024;

export function configFileBinds(command: readonly string[], configDir: string): ConfigBind[] {
  let root: string;
  try {
    root = realpathSync(configDir);
  } catch {
    return [];
  }
  const seen = new Set<string>();
  return command
    .filter((a) => path.isAbsolute(a) && a.startsWith(`${configDir}${path.sep}`))
    .flatMap((p) => {
      const rel = path.relative(configDir, p);
      if (seen.has(p) || rel.startsWith("..") || path.isAbsolute(rel)) return [];
      seen.add(p);
      let real: string;
      try {
        real = realpathSync(p);
      } catch {
        return [];
      }
      if (!real.startsWith(`${root}${path.sep}`)) return [];
      const st = statOrUndefined(real);
      return st && (st.isFile() || st.isDirectory())
        ? [{ arg: p, src: real, rel, dir: st.isDirectory(), size: st.size }]
        : [];
    });
}

export class SandboxBackend implements Backend {
  readonly name = "sandbox";

  constructor(
    private readonly stateRoot: string,
    private readonly settings: HostSettings,
    private readonly onExit?: (spec: StartSpec, pid: number) => void,
  ) {}

  private mode(): CgroupMode {
    const host = sandboxHost();
    if (host.problems.length || !host.cgroups)
      throw new LazarusError(
        "SANDBOX_UNAVAILABLE",
        `backend sandbox cannot run on this host: ${host.problems.join("; ") || "no cgroups"}`,
      );
    return host.cgroups;
  }

  private facts(rec: CellRecord): SandboxFacts {
    if (!rec.sandbox)
      throw new LazarusError("BUG", `cell ${rec.name} has no sandbox uid yet (prepareCell was not run)`);
    return rec.sandbox;
  }

  cellGroup(rec: CellRecord): Cgroup {
    return new Cgroup(this.mode(), this.facts(rec).cgroup);
  }

  memberGroup(rec: CellRecord, home: string): Cgroup {
    return new Cgroup(this.mode(), `${this.facts(rec).cgroup}/${home}`);
  }

  // Claim the cell's uid, hand it the member-writable dirs, keep the rest Lazarus's, and make the
  // cell's cgroup. Where the state dir's path is closed to others, the cell dir is staged for bwrap.
  async prepareCell(rec: CellRecord, cellDir: string): Promise<void> {
    this.mode();
    if (!rec.sandbox) {
      const uid = await claimUid(path.join(this.stateRoot, "uids"), this.settings.sandbox.uidRange, rec.name, rec.uid);
      rec.sandbox = { uid, gid: uid, cgroup: `${this.settings.sandbox.cgroupRoot}/${rec.name}-${rec.uid.slice(0, 8)}` };
    }
    const { uid, gid } = rec.sandbox;
    this.cellGroup(rec).create();
    await this.placeData(rec, cellDir);
    await handCellTo(cellDir, uid, gid);
    await this.syncView(rec, cellDir);
    await syncCellEgress(this.stateRoot, rec);
  }

  // The files members read (credentials, portfolios) copied where they are bound from.
  private async syncView(rec: CellRecord, cellDir: string, home?: string): Promise<void> {
    const homes = new Set(rec.members.map((m) => m.home));
    if (home) homes.add(home);
    await syncCellView(cellViewDir(this.stateRoot, rec.uid), cellDir, [...homes], this.facts(rec));
  }

  // Lazarus rewrote a file members read (a portfolio): running members see the new one.
  async filesChanged(rec: CellRecord, cellDir: string): Promise<void> {
    if (rec.sandbox) await this.syncView(rec, cellDir);
  }

  // A member that needs a bridge (bridge/member.ts) has its network namespace file, with the
  // doors of the services in it open, before anything of it starts (members, sessions, verify).
  private bridge(rec: CellRecord, home: string): Promise<string | undefined> {
    return readyBridge(this.stateRoot, rec, home);
  }

  // The cell's disk image (rec.disk) made, mounted and bound before anything of the cell runs;
  // its files are moved onto it only while the cell's cgroup is empty.
  placeData(rec: CellRecord, cellDir: string): Promise<string | undefined> {
    return placeDisk(rec, cellDir, () => this.cellGroup(rec).pids().length === 0);
  }

  async unmount(_rec: CellRecord, cellDir: string): Promise<void> {
    await releaseDisk(cellDir);
  }

  private reachable(p: string): boolean {
    return reachableByOthers(p);
  }

  // The mount points of whatever of this view must be staged.
  private prepareStage(view: SandboxView): void {
    ensureMountPoints(stageView(view, (p) => this.reachable(p)).mounts);
  }

  private tools(): Tools {
    const tools = sandboxHost().tools;
    if (!tools)
      throw new LazarusError(
        "SANDBOX_UNAVAILABLE",
        `backend sandbox cannot run on this host: ${sandboxHost().problems.join("; ")}`,
      );
    return tools;
  }

  // Extraction and deletion in the cell's tree run as the cell's uid, so a member that swaps a
  // directory for a symlink meanwhile can only make Lazarus touch what it could touch itself.
  async restore(rec: CellRecord, base: string, file: string, dirs: readonly string[]): Promise<void> {
    await restoreAsCell(this.facts(rec), this.tools(), base, file, dirs);
  }

  async clear(rec: CellRecord, base: string, dirs: readonly string[]): Promise<void> {
    await clearAsCell(this.facts(rec), this.tools(), base, dirs);
  }

  // The member's cgroup (its limits set only while it is empty: never changed under a running
  // member), and its home and run dir made for the cell's uid: what a start and a session need.
  private async readyMember(
    rec: CellRecord,
    spec: Pick<StartSpec, "identity" | "cell" | "home" | "homeName" | "cellDir" | "resources">,
    group: Cgroup,
  ): Promise<void> {
    const { uid, gid } = this.facts(rec);
    group.create();
    if (group.pids().length === 0) {
      try {
        // every member has a memory and a pid limit, declared or the host's default (limits.ts),
        // so neither a leak nor a fork bomb reaches the host
        group.setLimits(withDefaults(spec.resources, this.settings.limits));
      } catch (err) {
        throw new LazarusError(
          "CGROUP_FAILED",
          `cannot set the limits of ${spec.identity} in cell ${spec.cell}: ${errorMessage(err)}`,
          { cause: err },
        );
      }
    }
    await mkdir(spec.home, { recursive: true });
    await handOver(spec.home, uid, gid, 0o700);
    await realDir(memberRunDir(spec.cellDir, spec.homeName), 0o755);
    await this.syncView(rec, spec.cellDir, spec.homeName);
  }

  async start(rec: CellRecord, spec: StartSpec): Promise<Started> {
    const group = this.memberGroup(rec, spec.homeName);
    if (group.pids().length) await group.killAll();
    group.remove();
    await this.placeData(rec, spec.cellDir); // mounted again after a reboot, before the member runs
    await this.readyMember(rec, spec, group);
    const netns = await this.bridge(rec, spec.homeName);
    const view = await this.view(rec, spec, netns);
    const outerEnv: Record<string, string> = {
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      CELL_ID: spec.cell,
      LAZARUS_SPAWN_ID: spec.spawnId,
      LAZARUS_EXIT_FILE: spec.exitFile,
      LAZARUS_OOM_FILE: group.oomFile() ?? "",
      LAZARUS_CGROUP_PROCS: group.procsFiles().join(" "),
      LAZARUS_STAGE: STAGE,
    };
    await mkdir(path.dirname(spec.logFile), { recursive: true });
    this.prepareStage(view);
    return spawnSupervised(
      spec,
      "/bin/sh",
      sandboxArgv(view, this.tools(), (p) => this.reachable(p)),
      { cwd: "/", env: outerEnv },
      this.onExit,
    );
  }

  // What the member sees: its mounts, uid, network and environment (with in-sandbox paths).
  private async view(
    rec: CellRecord,
    spec: Omit<StartSpec, "logFile" | "exitFile" | "spawnId" | "resources"> & { resources?: Resources },
    netns: string | undefined,
  ): Promise<SandboxView> {
    const { uid, gid } = this.facts(rec);
    const viewDir = cellViewDir(this.stateRoot, rec.uid);
    const config = configFileBinds(spec.command, spec.configDir);
    // files up to CONFIG_COPY_MAX are copied (a larger one, and a dir, is bound at its own path)
    const files = config.filter((b) => !b.dir && b.size <= CONFIG_COPY_MAX);
    // copies of the config-dir files the command names, under CONFIG_INSIDE (made only at a
    // start: a session or probe names none, and never replaces a running member's)
    if (files.length) await copyConfigFiles(viewDir, spec.homeName, files);
    const moved = new Map(files.map((f) => [f.arg, path.posix.join(CONFIG_INSIDE, f.rel)]));
    const command = spec.command.map((a) => moved.get(a) ?? a);
    const home = sandboxHome(spec.homeName);
    const inside = memberEnv(
      {
        ...spec,
        cellDir: CELL_ROOT,
        home,
        credentialsFile: `${RUN_DIR}/secrets/credentials.json`,
        exitFile: "",
        spawnId: "",
        logFile: "",
        resources: {},
        ...(spec.portfolioFile ? { portfolioFile: `${home}/.lazarus/portfolio.json` } : {}),
      },
      {},
    );
    inside.TMPDIR = "/tmp";
    delete inside.LAZARUS_EXIT_FILE;
    delete inside.LAZARUS_SPAWN_ID;
    if (rec.network === "egress") Object.assign(inside, proxyEnv());
    return {
      uid,
      gid,
      hostname: spec.cell,
      // egress (or the gateway): its own namespace, made beforehand with the services' doors in it
      network: netns ? { netns } : rec.network === "host" ? "host" : "none",
      cellDir: spec.cellDir,
      role: spec.role as Role,
      home: spec.homeName,
      hostRoot: sandboxHost().hostRoot,
      extraBinds: [
        ...this.settings.sandbox.roBinds.flatMap((p) => {
          const st = statOrUndefined(p);
          return st ? [{ src: p, dest: p, dir: st.isDirectory() }] : [];
        }),
        ...config.filter((b) => !files.includes(b)).map((b) => ({ src: b.src, dest: b.arg, dir: b.dir })),
      ]
        // the venv, read-only at its own path
        .concat(spec.venv ? [{ src: spec.venv, dest: spec.venv, dir: true }] : []),
      portfolioDir: viewMemberDir(viewDir, spec.homeName),
      credentialsDir: viewSecretsDir(viewDir),
      ...(files.length ? { configFilesDir: viewConfigDir(viewDir, spec.homeName) } : {}),
      etcDir: ensureEtcView(),
      env: inside,
      command,
      // /tmp and /dev/shm are tmpfs, each half the member's memory limit: their pages are charged
      // to its memory cgroup (cgroup v1 and v2 alike), so a member that fills them gets ENOSPC
      // rather than an OOM kill, and the bound holds where no memory controller is mounted
      tmpfsBytes: Math.max(
        4096,
        Math.floor((spec.resources?.memoryBytes ?? this.settings.limits.defaultMemoryBytes) / 2 / 4096) * 4096,
      ),
    };
  }

  // Run a command in a member's own view and cgroup and wait for it (lazarus verify).
  async exec(
    rec: CellRecord,
    spec: MemberSpec,
    timeoutMs = 60_000,
  ): Promise<{ exitCode: number | undefined; stdout: string; stderr: string }> {
    const group = this.memberGroup(rec, spec.homeName);
    group.create();
    const netns = await this.bridge(rec, spec.homeName);
    await this.placeData(rec, spec.cellDir);
    await this.syncView(rec, spec.cellDir, spec.homeName);
    const view = await this.view(rec, spec, netns);
    this.prepareStage(view);
    const r = await execa(
      "/bin/sh",
      execArgv(view, this.tools(), (p) => this.reachable(p)),
      {
        env: {
          PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
          LAZARUS_CGROUP_PROCS: group.procsFiles().join(" "),
          LAZARUS_STAGE: STAGE,
        },
        extendEnv: false,
        reject: false,
        timeout: timeoutMs,
        stdin: "ignore",
        maxBuffer: 1 << 20,
      },
    );
    return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
  }

  // A session joins the member's own cgroup (not a child of it: in cgroup v2 a cgroup that holds
  // processes cannot also delegate controllers to children, and a running member's group holds
  // its processes), so it shares the member's limits and dies with it on stop, restart and close;
  // the mounts, uid, namespaces and network are the member's, built by the same view and argv.
  // The limits are set here only while the group is empty (a member without a command, e.g. a
  // human, has never been started), never changed under a running member.
  async session(rec: CellRecord, spec: SessionSpec): Promise<SessionSpawn> {
    const group = this.memberGroup(rec, spec.homeName);
    await this.placeData(rec, spec.cellDir);
    await this.readyMember(rec, spec, group);
    const netns = await this.bridge(rec, spec.homeName);
    const { command, shellVar } = sessionCommand(spec, spec.shell, spec.tty ? scriptPath() : undefined);
    // configDir: no file of the config dir is bound for a session (a member sees only those its own command names)
    const view = await this.view(rec, { ...spec, configDir: NO_CONFIG_DIR, command }, netns);
    view.env.SHELL = shellVar;
    view.env.LAZARUS_SESSION = spec.sessionId;
    if (spec.tty?.term) view.env.TERM = spec.tty.term;
    this.prepareStage(view);
    return {
      file: "/bin/sh",
      args: execArgv(view, this.tools(), (p) => this.reachable(p)),
      env: {
        PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
        LAZARUS_CGROUP_PROCS: group.procsFiles().join(" "),
        LAZARUS_STAGE: STAGE,
      },
      cwd: "/",
      stdio: "pipe",
    };
  }

  // The supervisor lives and proves it is this member's (spawn id and cell in its environment).
  isAlive(m: MemberRef): boolean {
    return ownsProcess(m.pid, { startTime: m.startTime, spawnId: m.spawnId, cell: m.cell });
  }

  // SIGTERM to the member's processes, SIGKILL to whatever of its cgroup is left after timeoutMs,
  // then wait for the supervisor to record the exit.
  async stop(rec: CellRecord, m: MemberRecord, timeoutMs: number): Promise<void> {
    if (!rec.sandbox) return;
    const group = this.memberGroup(rec, m.home);
    if (group.pids().length) {
      group.signal("SIGTERM");
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline && group.pids().length) await sleep(25);
      const left = await group.killAll();
      if (left.length)
        throw new LazarusError(
          "STOP_FAILED",
          `member ${m.identity} of cell ${rec.name}: processes ${left.join(", ")} survived SIGKILL`,
        );
    }
    const supervisor =
      m.status === "starting" && m.spawnId
        ? this.find(rec.name, m.spawnId)
        : m.pid
          ? { pid: m.pid, startTime: m.startTime }
          : undefined;
    for (let i = 0; i < 200 && supervisor && isAlive(supervisor.pid, supervisor.startTime); i++) await sleep(10);
  }

  find(cell: string, spawnId: string): Started | undefined {
    return findLeader(cell, spawnId);
  }

  signal(rec: CellRecord, m: MemberRecord, sig: NodeJS.Signals): boolean {
    if (!rec.sandbox || !this.isAlive({ cell: rec.name, pid: m.pid, startTime: m.startTime, spawnId: m.spawnId }))
      return false;
    this.memberGroup(rec, m.home).signal(sig);
    return true;
  }

  async freeze(rec: CellRecord, frozen: boolean): Promise<void> {
    if (!rec.sandbox) return;
    const group = this.cellGroup(rec);
    if (!group.freeze(frozen)) group.signal(frozen ? "SIGSTOP" : "SIGCONT");
  }

  async stopCell(rec: CellRecord): Promise<number[]> {
    await forgetCellEgress(this.stateRoot, rec.name);
    if (!rec.sandbox) return [];
    const left = await this.cellGroup(rec).killAll();
    if (left.length === 0) await dropCellBridges(this.stateRoot, rec);
    return left;
  }

  async releaseCell(rec: CellRecord): Promise<void> {
    await forgetCellEgress(this.stateRoot, rec.name);
    if (!rec.sandbox) return;
    const group = this.cellGroup(rec);
    if ((await group.killAll()).length === 0) {
      group.remove();
      await dropCellBridges(this.stateRoot, rec);
    }
    await dropCellView(cellViewDir(this.stateRoot, rec.uid));
    await releaseUid(path.join(this.stateRoot, "uids"), rec.sandbox.uid, rec.name, rec.uid);
  }
}
