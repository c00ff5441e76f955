// Desired state: what operators declared in cells.d/, after validation and defaults.
import type { EgressEntry } from "../egress/allow.js";

export const ROLES = ["director", "executor", "observer", "guest", "substitute"] as const;
export type Role = (typeof ROLES)[number];

// A backend's name: a row of the registry (src/backends/table.ts), which alone knows them.
export type BackendName = string;

// Limits of a sandboxed member (cgroups).
export interface Resources {
  memoryBytes?: number;
  pids?: number;
  cpu?: number; // cores
}

// What a container cell's members run in (container backend).
export interface ContainerSpec {
  image: string; // a local image reference, e.g. localhost/agent:1
  user?: string; // uid[:gid] inside the container; default: the cell's own uid
  readOnlyRootfs: boolean; // the image's filesystem read-only (project/shared/home stay as their role says)
}

// Where a kubernetes cell runs (spec.kubernetes in schemas/cell.schema.json), defaults applied.
export interface KubernetesSpec {
  namespace: string;
  image: string;
  workload: "pod" | "sandbox";
  storageClass?: string;
  storage: string; // a quantity, e.g. 1Gi
  accessMode: "ReadWriteOnce" | "ReadWriteMany";
  runAsUser: number;
  egress: { cidr: string; ports?: number[] }[];
  // as written, relative to the secrets root; absolute once loading checked it (config/credentials.ts)
  kubeconfig?: string;
  context?: string;
}

// spec.remote as declared: every connection field inline, or the name of a host in the operator's
// hosts file (LAZARUS_REMOTE_HOSTS). target: the resolved connection (filled in by loading).
export interface RemoteSpec {
  name?: string;
  host?: string;
  user?: string;
  port?: number;
  identityFile?: string;
  knownHosts?: string;
  root?: string;
  target?: RemoteTarget;
}

// Where a remote cell lives and how Lazarus reaches it (recorded in cell.json).
export interface RemoteTarget {
  name?: string; // the hosts-file entry it came from
  host: string;
  user?: string; // default: Lazarus's own user name
  port: number;
  identityFile: string;
  knownHosts: string;
  root: string; // where cells live on the remote host (absolute, or ~/...)
}

export type CredentialSource = { file: string } | { env: string };

export type { SourcePos } from "./position.js";
import type { SourcePos } from "./position.js";

export const RESTART_POLICIES = ["always", "on-failure", "never"] as const;
export type RestartPolicy = (typeof RESTART_POLICIES)[number];

export interface DesiredMember {
  identity: string; // kind:name
  home: string; // the part after the colon; the member's home directory name
  role: Role;
  command?: string[];
  env: Record<string, string>;
  restart: RestartPolicy;
  heartbeatMs?: number;
  replaces?: string; // identity of the member a substitute stands in for
  portfolio?: string; // the portfolio it names itself
  taskClass?: string; // its own, else the cell's
  onPortfolioChange: "signal" | "restart" | "none";
  resources: Resources; // its own limits, else the cell's (sandbox backend)
  // Filled in after loading: the portfolio this agent resolves to (undefined for non-agents,
  // when none applies, or while a portfolio file is quarantined).
  resolvedPortfolio?: { name: string; selector: string; digest: string; document: unknown };
  source: SourcePos;
  commandSource?: SourcePos; // where its program (command[0]) is written
}

// spec.runtime.python: a venv for the cell's members (see src/runtime/python/).
export interface PythonRuntime {
  requirements?: string; // relative to the config dir
  findLinks?: string; // a wheel directory relative to the config dir
  // Filled in by loading (it reads the files): the requirements text as read, and a digest of it
  // and of the wheels in findLinks. The venv is rebuilt when the digest changes.
  requirementsText?: string;
  digest?: string;
  at?: SourcePos; // where spec.runtime.python is written
}

// spec.network.egress: what the cell declares, and what is added automatically (its members'
// model providers, its project's forge; filled in after portfolios are resolved).
export interface CellEgress {
  declared: string[]; // as written
  entries: EgressEntry[]; // the valid declared ones
  auto: { entry: EgressEntry; why: string }[];
}

// spec.budget: tokens and/or cost per rolling period (src/gateway/: the model gateway counts them).
export interface CellBudget {
  tokens?: number;
  cost?: number; // in the currency of the portfolios' prices
  periodMs: number;
}

// How a cell's members reach the model gateway: on the host's loopback at its port, or at
// 127.0.0.1:GATEWAY_MEMBER_PORT inside a network namespace of their own (a bridge carries it).
export type GatewayReach = "host" | "namespace";

// spec.progress: what a stall (no progress for a slice) does to the cell's running executors.
export const ON_STALL = ["restart", "substitute", "abort", "notify"] as const;
export type OnStall = (typeof ON_STALL)[number];
export interface ProgressSpec {
  sliceMs: number;
  onStall: OnStall;
}

// spec.push: the branch of project/ Lazarus pushes at checkpoint and close (src/forge/push.ts).
export interface PushSpec {
  branch: string;
}

export interface DesiredCell {
  name: string;
  labels: Record<string, string>;
  project: string;
  owner: string;
  backend: BackendName;
  // sandbox and container backends: its own loopback only, the host's network, or an egress
  // allowlist through Lazarus's proxy (see egress below and src/egress/)
  network: "none" | "host" | "egress";
  egress?: CellEgress; // network: {egress: [...]}
  resources: Resources; // limits of each member that declares none of its own
  // spec.resources.disk as declared, else the host's LAZARUS_DEFAULT_DISK where the backend
  // enforces it (filled in by loading); enforced: the backend gives the cell a disk image.
  disk?: { bytes: number; declared: boolean; enforced: boolean; at: SourcePos };
  container?: ContainerSpec; // container backend: the image members run in
  kubernetes?: KubernetesSpec; // kubernetes backend: namespace, image, storage, cluster access
  remote?: RemoteSpec; // remote backend: the host members run on
  state: "active" | "closed";
  ttlMs: number;
  graceMs: number;
  retentionMs: number;
  policy: { allowGuests: boolean; allowSubstitutes: boolean };
  credentials: Record<string, CredentialSource>;
  credentialsAt?: Record<string, SourcePos>; // where each credential is declared, for diagnostics
  kubeconfigAt?: SourcePos; // where spec.kubernetes.kubeconfig is declared, for diagnostics
  // A keyed digest of the credentials' current values (filled in by loading when the state dir's
  // key exists): a rotated secret changes it. Never a value.
  credentialsValueDigest?: string;
  // compression: unset = zstd where the host has it, else gzip; maxBytes: unset = the host's bound
  checkpoint: { schedule?: string; keep: number; compression?: "gzip" | "zstd"; maxBytes?: number };
  taskClass?: string;
  restoreFrom?: string;
  python?: PythonRuntime;
  logs?: { maxBytes?: number; keep?: number }; // spec.logs as declared (defaults: the host's)
  budget?: CellBudget; // spec.budget: what its members may spend through the model gateway
  // Filled in after portfolios are resolved (src/gateway/broker.ts): how its members reach the
  // model gateway, and which of its credentials the gateway holds instead of the members.
  gateway?: { reach: GatewayReach; brokered: string[] };
  downedTimeoutMs: number;
  inviteTtlMs: number;
  progress?: ProgressSpec; // spec.progress: commit-or-abort (src/progress/); none: never judged
  push?: PushSpec; // spec.push: the branch pushed to the project's forge (docs/forges.md)
  members: DesiredMember[];
  source: SourcePos;
}

// One cells.d/ file as loaded: its cells and what is wrong with them.
export interface FileResult {
  file: string;
  cells: DesiredCell[];
  diagnostics: import("./diagnostics.js").Diagnostic[];
}

// A file that failed to parse or validate: the cells it may declare are held as they are.
export interface QuarantinedFile {
  file: string;
  // Cell names the broken text still appears to declare (a best-effort salvage; holding more is safe).
  names: string[];
}

export interface Desired {
  cells: Map<string, DesiredCell>;
  portfolios: Map<string, import("../portfolio/types.js").Portfolio>;
  // True while a file in portfolios/ is broken: portfolio files of members are then left as they are.
  portfoliosHeld: boolean;
  quarantined: QuarantinedFile[];
  // Every file that was read, relative to the config dir.
  files: string[];
}

export const LIMITS = {
  maxTtlMs: 24 * 3_600_000,
  defaultTtl: "4h",
  defaultGrace: "30m",
  defaultRetention: "30d",
  defaultDownedTimeout: "1h",
  defaultInviteTtl: "15m",
  maxInviteTtlMs: 15 * 60_000,
  defaultKeep: 5,
  defaultSlice: "10m",
} as const;
