// The live half of the backend contract (the whole contract: contract.ts): what Lazarus asks of
// wherever a cell's members run. Apply reaches members only through it; each backend keeps its
// own facts (pids, cgroups, uids). How members are observed: BackendSpec.observe.
import type { TreeSize } from "../checkpoints/size.js";
import type { CellRecord, MemberRecord } from "../cells/record.js";
import type { Resources } from "../config/types.js";
import { memberHome, portfolioFile, venvDir, type CellPaths } from "../cells/layout.js";

export interface StartSpec {
  cell: string;
  cellDir: string;
  identity: string;
  home: string; // absolute host path of the member's home
  homeName: string; // the home's directory name
  role: string;
  command: string[];
  env: Record<string, string>; // the member's declared env (non-secret)
  credentialsFile: string;
  logFile: string;
  logs?: LogLimits; // rotation of logFile (default: DEFAULT_LOG_LIMITS in spawn.ts)
  exitFile: string; // where the command's exit code is written when it exits
  portfolioFile?: string; // the member's resolved model portfolio (LAZARUS_PORTFOLIO)
  spawnId: string; // marks the process so a crashed recorder can find it again
  resources: Resources;
  configDir: string; // where ./relative command arguments were resolved
  venv?: string; // the cell's Python venv (host path): its bin/ first on PATH, VIRTUAL_ENV
  // The model gateway serves this member: its token (this incarnation's) and the port it calls on
  // 127.0.0.1 where it runs (src/gateway/cells.ts).
  gateway?: { token: string; port: number };
}

// What every run of a member is given, built from its record by memberSpec: its start (StartSpec
// adds what only a supervised member has: log, exit file, spawn id, gateway token), a session
// (SessionSpec) and a verify probe (Backend.exec).
export type MemberSpec = Omit<StartSpec, "logFile" | "logs" | "exitFile" | "spawnId" | "gateway">;

// The configDir of a run that names no file of the config dir (a session's, a probe's): none is
// shown to it.
export const NO_CONFIG_DIR = "/nonexistent";

// What differs from one run of a member to another, said by the caller.
export interface MemberRun {
  command: string[]; // its ./relative arguments already resolved against configDir
  env: Record<string, string>; // the member's declared env, or a probe's own
  configDir: string; // where the command's ./relative arguments were resolved, or NO_CONFIG_DIR
  memberFilesInMeta: boolean | undefined; // the backend's say (BackendSpec.memberFilesInMeta)
  // false: without the cell's venv (verify's probe: the venv's read-only bind at its own path shows
  // a member the bare path down to it, which the probe's residue and state-dir checks cannot yet
  // tell from a leak)
  venv?: boolean;
}

// The one place a member's run spec is made from its record: its home, role, limits, credentials
// manifest, portfolio (when it has one) and the cell's venv (when it has one), for whatever runs.
export function memberSpec(rec: CellRecord, cp: CellPaths, m: MemberRecord, run: MemberRun): MemberSpec {
  return {
    cell: rec.name,
    cellDir: cp.dir,
    identity: m.identity,
    home: memberHome(cp, m.home),
    homeName: m.home,
    role: m.role,
    command: run.command,
    env: run.env,
    credentialsFile: cp.credentials,
    resources: m.resources ?? {},
    configDir: run.configDir,
    ...(m.portfolioDigest ? { portfolioFile: portfolioFile(cp, m.home, run.memberFilesInMeta) } : {}),
    ...(rec.python && run.venv !== false ? { venv: venvDir(cp.dir, rec.python.digest) } : {}),
  };
}

// A human's shell or one command run as a member (lazarus shell / lazarus exec): the member's
// spec without what only a supervised member has (log, exit file, spawn id).
export interface SessionSpec extends Omit<StartSpec, "logFile" | "exitFile" | "spawnId"> {
  sessionId: string; // marks the session's processes and names its container
  shell: string; // the SHELL the session sees (the shell an interactive session runs)
  tty?: { rows: number; cols: number; term?: string }; // interactive: a pseudo-terminal of this size
}

// What the caller spawns (and waits for) to run a session. stdio "pipe": the caller relays the
// operator's stdin/stdout/stderr (no member process ever holds the operator's terminal);
// "inherit": a trusted host tool (the container engine) that gives the member its own pty.
export interface SessionSpawn {
  file: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  stdio: "pipe" | "inherit";
}

// How large a member's log may grow before it is rotated, and how many rotated files are kept.
export interface LogLimits {
  maxBytes: number;
  keep: number;
  pump?: boolean; // false: the member writes straight to its log (no times, no rotation)
}

export interface Started {
  pid: number; // 0 for a member with no local process (kubernetes: see handle)
  startTime: number | undefined; // undefined when it exited before it could be read
  handle?: string; // where a member without a local process runs, e.g. namespace/pod
}

// Who a member's process is, as recorded: enough to prove a live process is really it.
export interface MemberRef {
  cell: string;
  pid?: number | undefined;
  startTime?: number | undefined;
  spawnId?: string | undefined;
}

export const memberRef = (cell: string, m: Pick<MemberRecord, "pid" | "startTime" | "spawnId">): MemberRef => ({
  cell,
  pid: m.pid,
  startTime: m.startTime,
  spawnId: m.spawnId,
});

export interface Backend {
  readonly name: string;
  // Make the cell's tree ready for members (ownership, cgroups); idempotent. May add facts to rec.
  prepareCell(rec: CellRecord, cellDir: string): Promise<void>;
  start(rec: CellRecord, spec: StartSpec): Promise<Started>;
  isAlive(m: MemberRef): boolean;
  // Stop the member's whole tree gracefully, then forcefully after timeoutMs. Resolves when gone.
  stop(rec: CellRecord, m: MemberRecord, timeoutMs: number): Promise<void>;
  // The live process started with this spawnId, if any.
  find(cell: string, spawnId: string): Started | undefined;
  signal(rec: CellRecord, m: MemberRecord, sig: NodeJS.Signals): boolean;
  // Extract dirs of a checkpoint into base (the cell dir of a fresh cell, or a staging dir: see
  // src/apply/restore.ts) as the cell's own user where the backend has one, and check them
  // against its manifest. base/<dir> are empty or absent.
  restore(rec: CellRecord, base: string, checkpointFile: string, dirs: readonly string[]): Promise<void>;
  // Delete base/<dir> for each dir (they are out of every member's reach: replaced or staged
  // dirs), as the cell's own user where the backend has one.
  clear(rec: CellRecord, base: string, dirs: readonly string[]): Promise<void>;
  // Freeze every process of the cell (for a consistent checkpoint), or thaw it.
  freeze(rec: CellRecord, frozen: boolean): Promise<void>;
  // Kill whatever of the cell still runs (after its members were stopped); the pids that survived.
  stopCell(rec: CellRecord): Promise<number[]>;
  // Bring the members' logs into the cell's local logs dir, for backends that keep them elsewhere
  // (remote): called at close, after stopCell, so the graveyard and the archive keep them.
  collectLogs?(rec: CellRecord, logsDir: string): Promise<void>;
  // The cell is gone for good (scrubbed): give back what it held (cgroups, uid).
  releaseCell(rec: CellRecord): Promise<void>;
  // For a backend that keeps the cell's project/, shared/ and home/ on a disk image of their own
  // (rec.disk; see capabilities.ts): put them in place (the image made, mounted, its dirs bound
  // over the cell's, binds renewed after a restore swapped a dir) and say where they really are.
  // A restore is staged and swapped there. Undefined: they are plain dirs of the cell dir.
  placeData?(rec: CellRecord, cellDir: string): Promise<string | undefined>;
  // Take the cell's tree off what the backend mounted for it and delete that (its disk image):
  // before the tree is deleted (scrub) or laid out for another backend (replace). Idempotent.
  unmount?(rec: CellRecord, cellDir: string): Promise<void>;
  // Lazarus rewrote a file of the cell that members read (a portfolio, the credentials manifest):
  // show it where members read it, running ones included. Optional: for a backend that shows
  // members copies of those files rather than the files themselves (sandbox).
  filesChanged?(rec: CellRecord, cellDir: string): Promise<void>;
  // How to run a session in the member's own view (same mounts, uid, limits, network and env as
  // its processes get); prepares what the view needs (its home, its cgroup).
  session(rec: CellRecord, spec: SessionSpec): Promise<SessionSpawn>;
  // Run a command (spec.command) in a member's own view (its mounts, uid, limits, network), for
  // lazarus verify's probe, ended after timeoutMs (the backend's default when absent); only a
  // backend whose BackendSpec.verify has a probe has it.
  exec?(
    rec: CellRecord,
    spec: MemberSpec,
    timeoutMs?: number,
  ): Promise<{ exitCode: number | undefined; stdout: string; stderr: string }>;
  // Optional, for a backend whose cell tree is on another host: the command writing the tar of
  // dirs on its stdout (a checkpoint is compressed, listed and kept here), and a check of the
  // received bytes (their sha256) against what that host reported on stderr.
  tarSource?(rec: CellRecord, dirs: readonly string[]): TarSource;
}

export interface TarSource {
  file: string;
  args: string[];
  check(stderr: string, sha256: string): void;
  // The size walk of size.ts (treeSize) where the tree is, before the cell is frozen.
  size?(dirs: readonly string[], maxBytes: number): Promise<TreeSize>;
}
