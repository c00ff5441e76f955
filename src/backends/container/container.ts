// The container backend: each member in a container of the host's engine (podman or docker), as
// the cell's own uid with no capabilities, its limits from resources, no network unless the cell
// opts into the host's. A small supervisor process on the host runs the container attached, so
// liveness, find-after-crash and the exit file work as for the other backends (the supervisor
// carries the spawn id); labels name the cell incarnation, member and spawn of every container,
// so whatever a crashed run left behind is found again and removed.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "../../util/exec.js";
import type { CellRecord, MemberRecord } from "../../cells/record.js";
import type { Role } from "../../config/types.js";
import { withDefaults } from "../../host/limits.js";
import type { HostSettings } from "../../host/settings.js";
import { LazarusError } from "../../util/errors.js";
import {
  memberRef,
  type Backend,
  type MemberRef,
  type SessionSpawn,
  type MemberSpec,
  type SessionSpec,
  type StartSpec,
  type Started,
} from "../backend.js";
import { memberEnv } from "../env.js";
import { findLeader, isAlive, ownsProcess } from "../../host/proc.js";
import { spawnSupervised } from "../spawn.js";
import { CELL_ROOT, RUN_DIR, sandboxHome } from "../sandbox/argv.js";
import { handCellTo, memberRunDir, realDir } from "../sandbox/sandbox.js";
import { handOver } from "../sandbox/handover.js";
import { claimUid, releaseUid } from "../sandbox/uids.js";
import { clearAsCell, restoreAsCell, type RunAsTools } from "../sandbox/run-as.js";
import { forgetCellEgress, syncCellEgress } from "../../egress/cells.js";
import { proxyEnv } from "../../egress/member.js";
import { dropCellBridges, readyBridge } from "../../bridge/member.js";
import { LABEL_CELL_UID, LABEL_MEMBER, SUPERVISOR, containerName, runArgs, type ContainerView } from "./argv.js";
import { containerEngine } from "./engine.js";
import { placeDisk, releaseDisk } from "../disk/image.js";

export class ContainerBackend implements Backend {
  readonly name = "container";

  constructor(
    private readonly stateRoot: string,
    private readonly settings: HostSettings,
    private readonly onExit?: (spec: StartSpec, pid: number) => void,
  ) {}

  private engine(): string {
    const e = containerEngine();
    if (e.problems.length || !e.bin)
      throw new LazarusError(
        "CONTAINER_UNAVAILABLE",
        `backend container cannot run on this host: ${e.problems.join("; ") || "no engine"}`,
      );
    return e.bin;
  }

  private uid(rec: CellRecord): { uid: number; gid: number } {
    if (!rec.containerUid) throw new LazarusError("BUG", `cell ${rec.name} has no uid yet (prepareCell was not run)`);
    return rec.containerUid;
  }

  // The engine's answer (stdout), never throwing: undefined when it failed.
  private async run(args: string[]): Promise<string | undefined> {
    const r = await execa(this.engine(), args, { reject: false, stdin: "ignore", timeout: 120_000 });
    return r.exitCode === 0 ? String(r.stdout) : undefined;
  }

  // Names of the containers (any state) carrying all these labels.
  async containers(labels: Record<string, string>): Promise<string[]> {
    const filters = Object.entries(labels).flatMap(([k, v]) => ["--filter", `label=${k}=${v}`]);
    const out = await this.run(["ps", "-a", "--format", "{{.Names}}", ...filters]);
    if (out === undefined)
      throw new LazarusError("CONTAINER_FAILED", `cannot list the containers labelled ${JSON.stringify(labels)}`);
    return out
      .split("\n")
      .map((s) => s.trim())
      .filter(Boolean);
  }

  private async remove(names: string[]): Promise<void> {
    if (names.length) await this.run(["rm", "-f", ...names]);
  }

  // Claim the cell's uid and hand it the member-writable dirs, as the sandbox backend does.
  async prepareCell(rec: CellRecord, cellDir: string): Promise<void> {
    this.engine();
    if (!rec.containerUid) {
      const uid = await claimUid(path.join(this.stateRoot, "uids"), this.settings.sandbox.uidRange, rec.name, rec.uid);
      rec.containerUid = { uid, gid: uid };
    }
    const kind = containerEngine().kind;
    if (kind) rec.containerEngine = kind; // for status: where the members run
    const { uid, gid } = rec.containerUid;
    await this.placeData(rec, cellDir);
    await handCellTo(cellDir, uid, gid); // as the sandbox backend lays it out
    await syncCellEgress(this.stateRoot, rec);
  }

  // The cell's disk image (rec.disk) made, mounted and bound before any container of it runs; its
  // files are moved onto it only while the cell has no container.
  async placeData(rec: CellRecord, cellDir: string): Promise<string | undefined> {
    return placeDisk(rec, cellDir, async () => (await this.containers({ [LABEL_CELL_UID]: rec.uid })).length === 0);
  }

  async unmount(_rec: CellRecord, cellDir: string): Promise<void> {
    await releaseDisk(cellDir);
  }

  // The member's container view (what runArgs turns into a command line), with its home ready.
  private async view(
    rec: CellRecord,
    spec: Omit<StartSpec, "logFile" | "exitFile">,
    name: string,
  ): Promise<ContainerView> {
    // a member that needs a bridge joins its namespace file, with the services' doors open in it
    const netns = await readyBridge(this.stateRoot, rec, spec.homeName);
    const container = rec.container;
    if (!container) throw new LazarusError("BUG", `container cell ${rec.name} has no image recorded`);
    const { uid, gid } = this.uid(rec);
    await this.placeData(rec, spec.cellDir); // mounted again after a reboot, before any container binds it
    await mkdir(spec.home, { recursive: true });
    await handOver(spec.home, uid, gid, 0o700);
    await realDir(memberRunDir(spec.cellDir, spec.homeName), 0o755);
    const home = sandboxHome(spec.homeName);
    const env = memberEnv(
      {
        ...spec,
        logFile: "",
        exitFile: "",
        cellDir: CELL_ROOT,
        home,
        credentialsFile: `${RUN_DIR}/secrets/credentials.json`,
        ...(spec.portfolioFile ? { portfolioFile: `${home}/.lazarus/portfolio.json` } : {}),
      },
      {},
    );
    env.TMPDIR = "/tmp";
    delete env.LAZARUS_EXIT_FILE;
    delete env.LAZARUS_SPAWN_ID;
    if (rec.network === "egress") Object.assign(env, proxyEnv());
    return {
      name,
      cell: spec.cell,
      cellUid: rec.uid,
      identity: spec.identity,
      spawnId: spec.spawnId,
      container,
      uid,
      gid,
      network: netns ? { netns } : rec.network === "host" ? "host" : "none",
      role: spec.role as Role,
      cellDir: spec.cellDir,
      home: spec.homeName,
      ...(spec.portfolioFile ? { portfolioDir: memberRunDir(spec.cellDir, spec.homeName) } : {}),
      credentialsDir: path.join(spec.cellDir, ".lazarus", "secrets"),
      resources: withDefaults(spec.resources, this.settings.limits),
      env,
      command: spec.command,
    };
  }

  async start(rec: CellRecord, spec: StartSpec): Promise<Started> {
    const engine = this.engine();
    // Whatever an earlier spawn of this member left (its supervisor killed) goes first: one
    // container per member.
    await this.remove(await this.containers({ [LABEL_CELL_UID]: rec.uid, [LABEL_MEMBER]: spec.identity }));
    const name = containerName(spec.spawnId);
    const view = await this.view(rec, spec, name);
    const args = runArgs(view);
    const outerEnv = {
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}),
      ...(process.env.CONTAINERS_CONF ? { CONTAINERS_CONF: process.env.CONTAINERS_CONF } : {}),
      ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
      CELL_ID: spec.cell,
      LAZARUS_SPAWN_ID: spec.spawnId,
      LAZARUS_EXIT_FILE: spec.exitFile,
      LAZARUS_CONTAINER: name,
    };
    await mkdir(path.dirname(spec.logFile), { recursive: true });
    return spawnSupervised(
      spec,
      "/bin/sh",
      ["-c", SUPERVISOR, "lazarus-container", engine, ...args],
      { cwd: "/", env: outerEnv },
      this.onExit,
    );
  }

  // A session runs in a container of its own alongside the member's (a member without a command,
  // e.g. a human, has none to exec into), made by the same runArgs: the member's image, uid, binds,
  // limits and network, labelled with the cell incarnation and the member so close, stop and
  // restart remove it as they remove the member's. `run --rm -i`, with -t for a shell: the engine
  // gives the container its own pty and relays the operator's terminal (a host tool, not a member
  // process, holds it).
  async session(rec: CellRecord, spec: SessionSpec): Promise<SessionSpawn> {
    const engine = this.engine();
    const name = `lazarus-session-${spec.sessionId}`;
    const view = await this.view(rec, { ...spec, spawnId: spec.sessionId }, name);
    view.env.SHELL = spec.shell;
    view.env.LAZARUS_SESSION = spec.sessionId;
    if (spec.tty?.term) view.env.TERM = spec.tty.term;
    const args = runArgs(view);
    args.splice(1, 0, "--rm", "-i", ...(spec.tty ? ["-t"] : []));
    const env: Record<string, string> = {
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    };
    for (const k of ["TMPDIR", "CONTAINERS_CONF", "DOCKER_HOST", "XDG_RUNTIME_DIR"])
      if (process.env[k]) env[k] = process.env[k] as string;
    return { file: engine, args, env, cwd: "/", stdio: spec.tty ? "inherit" : "pipe" };
  }

  // Run a command in a fresh container with a member's view and limits, and wait for it
  // (lazarus verify). The container is removed after (--rm), and carries the cell's labels, so
  // one left by a killed verify goes with the member's next start, close or scrub.
  async exec(
    rec: CellRecord,
    spec: MemberSpec,
    timeoutMs = 120_000,
  ): Promise<{ exitCode: number | undefined; stdout: string; stderr: string }> {
    const spawnId = `verify-${randomBytes(6).toString("hex")}`;
    const view = await this.view(rec, { ...spec, spawnId }, containerName(spawnId));
    const args = runArgs(view);
    args.splice(1, 0, "--rm");
    const r = await execa(this.engine(), args, {
      reject: false,
      stdin: "ignore",
      timeout: timeoutMs,
      maxBuffer: 1 << 20,
    });
    return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
  }

  // The supervisor lives and proves it is this member's (spawn id and cell in its environment).
  isAlive(m: MemberRef): boolean {
    return ownsProcess(m.pid, { startTime: m.startTime, spawnId: m.spawnId, cell: m.cell });
  }

  // `stop -t`: SIGTERM to the container's init (which passes it on), SIGKILL to everything in it
  // after the timeout; then the supervisor records the exit and removes the container. While the
  // supervisor lives its container may not exist yet (`run` is still creating it): keep looking,
  // so a container created after the stop began is stopped too.
  async stop(rec: CellRecord, m: MemberRecord, timeoutMs: number): Promise<void> {
    const supervisor =
      m.status === "starting" && m.spawnId
        ? this.find(rec.name, m.spawnId)
        : m.pid && this.isAlive(memberRef(rec.name, m))
          ? { pid: m.pid, startTime: m.startTime }
          : undefined;
    const labels = { [LABEL_CELL_UID]: rec.uid, [LABEL_MEMBER]: m.identity };
    const deadline = Date.now() + timeoutMs + 60_000;
    for (;;) {
      const names = await this.containers(labels);
      if (names.length) {
        const r = await execa(
          this.engine(),
          ["stop", "-t", String(Math.max(0, Math.ceil(timeoutMs / 1000))), ...names],
          { reject: false, stdin: "ignore", timeout: timeoutMs + 120_000 },
        );
        if (r.exitCode !== 0 && (await this.running(names)).length)
          throw new LazarusError(
            "STOP_FAILED",
            `member ${m.identity} of cell ${rec.name}: ${r.stderr.trim() || "stop failed"}`,
          );
      }
      if (!supervisor || !isAlive(supervisor.pid, supervisor.startTime) || Date.now() > deadline) break;
      await sleep(100);
    }
    // A container whose supervisor is gone (killed) is removed here.
    await this.remove(await this.containers(labels));
  }

  private async running(names: string[]): Promise<string[]> {
    const out = await this.run(["inspect", "--format", "{{.Name}} {{.State.Running}}", ...names]);
    return (out ?? "")
      .split("\n")
      .filter((l) => l.endsWith(" true"))
      .map((l) => l.split(" ")[0] as string);
  }

  find(cell: string, spawnId: string): Started | undefined {
    return findLeader(cell, spawnId);
  }

  signal(rec: CellRecord, m: MemberRecord, sig: NodeJS.Signals): boolean {
    if (!m.spawnId || !this.isAlive({ cell: rec.name, pid: m.pid, startTime: m.startTime, spawnId: m.spawnId }))
      return false;
    const r = spawnSync(this.engine(), ["kill", "--signal", sig, containerName(m.spawnId)], {
      stdio: "ignore",
      timeout: 60_000,
    });
    return r.status === 0;
  }

  // Extraction and deletion in the cell's tree run as the cell's uid, as in the sandbox backend:
  // whatever owners and modes an archive carries, what it leaves is the cell's own.
  async restore(rec: CellRecord, base: string, file: string, dirs: readonly string[]): Promise<void> {
    await restoreAsCell(this.uid(rec), this.runAsTools(), base, file, dirs);
  }

  async clear(rec: CellRecord, base: string, dirs: readonly string[]): Promise<void> {
    await clearAsCell(this.uid(rec), this.runAsTools(), base, dirs);
  }

  private runAsTools(): RunAsTools {
    const e = containerEngine();
    if (!e.runAs)
      throw new LazarusError(
        "CONTAINER_UNAVAILABLE",
        `backend container cannot run on this host: ${e.problems.join("; ")}`,
      );
    return e.runAs;
  }

  // pause/unpause every container of the cell (the engine freezes its cgroup).
  async freeze(rec: CellRecord, frozen: boolean): Promise<void> {
    const names = await this.containers({ [LABEL_CELL_UID]: rec.uid });
    for (const n of names) {
      const r = await execa(this.engine(), [frozen ? "pause" : "unpause", n], {
        reject: false,
        stdin: "ignore",
        timeout: 120_000,
      });
      if (
        r.exitCode !== 0 &&
        !/not running|not paused|no such container|is not paused|state (stopped|exited)/i.test(r.stderr)
      ) {
        throw new LazarusError(
          "FREEZE_FAILED",
          `cannot ${frozen ? "pause" : "unpause"} container ${n} of cell ${rec.name}: ${r.stderr.trim()}`,
        );
      }
    }
  }

  // Remove every container of the cell; the names of any that survived.
  async stopCell(rec: CellRecord): Promise<number[]> {
    await forgetCellEgress(this.stateRoot, rec.name);
    await this.remove(await this.containers({ [LABEL_CELL_UID]: rec.uid }));
    const left = await this.containers({ [LABEL_CELL_UID]: rec.uid });
    if (!left.length) {
      await dropCellBridges(this.stateRoot, rec);
      return [];
    }
    const pids = await this.run(["inspect", "--format", "{{.State.Pid}}", ...left]);
    return (pids ?? "")
      .split("\n")
      .map(Number)
      .filter((p) => p > 0);
  }

  // Fails while a container of the cell survives: the scrub that asked keeps its record (and tries
  // again next run) rather than deleting it and losing track of the containers.
  async releaseCell(rec: CellRecord): Promise<void> {
    const left = await this.stopCell(rec);
    if (left.length)
      throw new LazarusError(
        "STOP_FAILED",
        `cannot release cell ${rec.name}: containers of it survive (pids ${left.join(", ")}); nothing was deleted`,
      );
    if (rec.containerUid) await releaseUid(path.join(this.stateRoot, "uids"), rec.containerUid.uid, rec.name, rec.uid);
  }
}
