// The backend contract: what each backend folder exports, one object (see table.ts, the registry). The core
// (load, observe, plan, apply, verify, session, render, status) asks a backend through it and
// never compares a backend's name. Pure half: the backend's own rules, known without the host.
// Host half: its checks of this host, run as a step after loading. Live half: where members run.
import type { Diagnostic } from "../config/diagnostics.js";
import type { DesiredCell, GatewayReach, SourcePos } from "../config/types.js";
import type { CellRecord, MemberRecord } from "../cells/record.js";
import type { ObservedCell } from "../observe/types.js";
import type { DiskUsage } from "./disk/image.js";
import type { Check, Invariant } from "../verify/types.js";
import type { HostSettings } from "../host/settings.js";
import type { Backend, StartSpec } from "./backend.js";

export type At = (p: (string | number)[]) => SourcePos;

// Which python3 a backend's venvs are made with (a venv's bin/python links to it, so members
// must see it): any on the members' PATH, or only one whose real path matches realPath.
export interface PythonSupport {
  realPath?: RegExp;
  where: string; // "the PATH under /usr or /bin": where it is looked for, for a message
  why?: string; // why only there, for a message
}

// How a session (lazarus shell/exec) finds its default shell: the operator's own where the
// member sees the host's filesystem (host), only one under /usr, /bin or /sbin (system), or
// /bin/sh (image: the member's filesystem is an image's).
export type SessionShell = "host" | "system" | "image";

export interface Capabilities {
  checkpoint: boolean; // its tree is checkpointed and restored here (a final checkpoint at close)
  heartbeat: boolean; // Lazarus reads its members' heartbeat files
  // spec.progress: Lazarus reads the cell's evidence of progress (project/'s commits, shared/artifacts/)
  // in the cell's tree on this host; without it a cell would show none and stall every slice
  progress: boolean;
  python: PythonSupport | false; // spec.runtime.python: a venv Lazarus builds for its members
  // readOnlyRoles: can show a guest the cell read-only
  sessions: { shell: SessionShell; readOnlyRoles: boolean } | false;
  diskQuota: boolean; // spec.resources.disk is enforced (a disk image of the cell's own)
  network: "proxy" | "policy" | false; // spec.network honoured: by Lazarus's egress proxy, or a cluster's policy
  localPids: boolean; // its members are processes of this host (a pid and a start time prove them)
  // Its cells' project/ is a directory of this host, which Lazarus reads (and pushes: spec.push).
  projectHere: boolean;
  poll: boolean; // its members' exits are seen only by observing again: the daemon polls its live cells
  hostPrograms: boolean; // members' programs are looked up on this host's PATH at load
  // The backend-specific update fields it reads (the rows of src/cells/fields.ts marked backend):
  // a change of any other such field plans nothing for its cells.
  cellFields: readonly string[];
  // The schema paths whose change replaces its cells whole (rows of src/cells/fields.ts marked
  // backend, by "replace"), beside spec.backend itself.
  replacedBy: readonly string[];
}

// What a backend's live half is made with: the state dir, Lazarus's environment and settings.
// onExit: a member process this run started has ended.
export interface BackendContext {
  stateRoot: string;
  hostEnv: NodeJS.ProcessEnv;
  settings: HostSettings;
  onExit?: (spec: StartSpec, pid: number) => void;
}

// Where a cell runs, for status (from its record alone: status never asks a backend).
export interface CellWhere {
  host?: string | null; // the machine the members run on
  uid?: number | null; // sandbox, container: the cell's own uid
  cgroup?: string | null; // sandbox: the cell's cgroup (relative to the cgroup root)
  engine?: string | null; // container: podman or docker (null: recorded before engines were recorded)
  image?: string | null; // container: the image members run in
  namespace?: string | null; // kubernetes
}

export interface MemberWhere {
  cgroup?: string; // sandbox: the member's own cgroup
  container?: string; // container: the name of the member's container (engine ps/logs/inspect take it)
  pod?: string; // kubernetes
}

export interface WhereOf {
  cell(rec: CellRecord): CellWhere;
  member?(rec: CellRecord, m: MemberRecord): MemberWhere | undefined;
  text(w: CellWhere): string; // after "on <backend> at <host>"
}

// How lazarus verify proves a backend's cells: a probe run in each member's own view (label: "in
// the sandbox"), or a fixed list of what the backend does and does not enforce.
export type VerifyPlan =
  | {
      probe: {
        label: string;
        engineEnv: readonly string[];
        operatorBinds: boolean;
        stop: { check: string; detail: string };
      };
    }
  | { checks: () => Check[] };

// The objects a backend can print for review (lazarus render --backend NAME).
export interface Renderer {
  what: string; // "the Kubernetes objects", for help and messages
  objects(d: DesiredCell, credentials?: Record<string, string>): unknown[] | Promise<unknown[]>;
}

export interface BackendSpec {
  readonly name: string;
  readonly summary: string; // one line: where members run
  readonly capabilities: Capabilities;
  readonly invariants: readonly Invariant[]; // the invariants of spec §2 it enforces for its members
  // Its own fields in its cells, and their rules (pure).
  validate?(cell: DesiredCell, at: At): Diagnostic[];
  // Its own fields declared in another backend's cell (pure).
  stray?(cell: DesiredCell, at: At): Diagnostic[];
  // This host against its cells: tools, engines, hosts files (a step after loading; I/O).
  hostChecks?(cell: DesiredCell, at: At): Diagnostic[] | Promise<Diagnostic[]>;
  // Changes of its own fields that a live cell of this backend cannot follow (plan errors, each
  // saying what to do); the live cell keeps what it was made with (pure).
  unfollowed?(d: DesiredCell, rec: CellRecord): { field: string; message: string; hint: string }[];
  // Where a cell runs in a word or two, for plan: "process", "container localhost/agent:1".
  place?(x: { container?: { image: string } | undefined }): string;
  // What plan says of a new cell of this backend ("sandbox", "remote box1"), or nothing.
  describe?(d: DesiredCell): string | undefined;
  // The member's Lazarus-written files (its portfolio) live in .lazarus/members/<home>/, out of
  // its reach, rather than in its home.
  readonly memberFilesInMeta?: boolean;
  readonly where: WhereOf;
  readonly verify: VerifyPlan;
  readonly render?: Renderer;
  // Live half: what makes the backend for one state dir (its module loaded only when asked:
  // src/backends/registry.ts does, for apply, the daemon, sessions and verify).
  live(): Promise<(ctx: BackendContext) => Backend>;
  // Observe these cells' members (records read, each member alive: false) where they run, all at
  // once. Without it members are local processes, proved by pid and start time.
  observe?(cells: ObservedCell[], ctx: { stateRoot: string }): Promise<void>;
  // How a cell's members reach the model gateway (by its network as declared or recorded), or
  // undefined: they cannot (members on another machine), so their portfolios are not brokered.
  gatewayReach?(cell: { network?: "none" | "host" | "egress" | undefined }): GatewayReach | undefined;
  // A live cell with a disk quota (rec.disk): whether its image is in place, and how full.
  diskUsage?(cellDir: string): Promise<DiskUsage>;
}
