// cell.json: what Lazarus observed and did to one cell, written atomically after every change.
import type { EgressEntry } from "../egress/allow.js";
import type {
  CellBudget,
  BackendName,
  ContainerSpec,
  KubernetesSpec,
  ProgressSpec,
  PushSpec,
  RemoteTarget,
  Resources,
  RestartPolicy,
  Role,
} from "../config/types.js";
import type { CellState } from "./lifecycle.js";

export const RECORD_FORMAT = 1;

export type MemberStatus =
  | "starting" // a spawn is in flight; spawnId finds the process if the recorder crashed
  | "running"
  | "down" // its process exited or stopped beating; it restarts after its backoff
  | "completed" // exited with code 0 under restart: on-failure
  | "exited" // exited under restart: never, or stopped by Lazarus
  | "invited" // a member without a command, invitation open
  | "joined" // accepted its invitation
  | "revoked"; // its invitation expired

export interface MemberRecord {
  identity: string;
  home: string;
  role: Role;
  command?: string[];
  env: Record<string, string>;
  status: MemberStatus;
  pid?: number;
  handle?: string; // where a member without a local process runs (kubernetes: namespace/pod)
  startTime?: number; // kernel start time of pid, so a reused pid is not mistaken for the member
  spawnId?: string;
  startedAt?: string;
  exitedAt?: string;
  restarts: number;
  joinedAt: string;
  restart?: RestartPolicy; // default on-failure
  heartbeatMs?: number;
  replaces?: string;
  failures?: number; // consecutive failures, for the backoff; reset after 10 minutes up
  downAt?: string; // when it went down (its exit time when known)
  exitCode?: number | null; // null: gone without an exit status (killed)
  exitReason?: "oom"; // how it ended when more than a code says it (OOM-killed by its memory limit)
  invitedAt?: string;
  inviteExpiresAt?: string;
  acceptedAt?: string;
  revokedAt?: string;
  resources?: Resources; // sandbox limits the member runs with
  // Stopped by Lazarus for a stall (spec.progress): abort keeps it stopped until its command or env
  // changes; substitute keeps it stopped while its substitute stands in. Cleared when it next starts.
  stalled?: { at: string; outcome: "abort" | "substitute" };
  portfolioName?: string; // the portfolio written to home/<name>/.lazarus/portfolio.json
  portfolioDigest?: string;
  portfolioModels?: string[];
  // it calls the model gateway (holds a gateway token): without the host's network it gets a
  // network namespace file with the gateway's door in it (bridge/member.ts needsBridge)
  usesGateway?: boolean;
}

// A replacement in progress (backend or container image changed; see replace in src/apply/ops.ts):
// set before its first effect, cleared when the members run on the new backend.
export interface Replacing {
  from: {
    backend: BackendName;
    uid: string; // the incarnation that ran on it
    sandbox?: { uid: number; gid: number; cgroup: string };
    containerUid?: { uid: number; gid: number };
    container?: ContainerSpec;
  };
  to: { backend: BackendName; container?: ContainerSpec }; // where it goes (the declaration, until the switch)
  uid: string; // the new incarnation
  startedAt: string;
  checkpoint?: string; // the checkpoint (name under .lazarus/checkpoints/) taken with nothing running
  switched?: boolean; // the record names the new backend and incarnation
  restored?: boolean; // project/, shared/ and home/ are the checkpoint's, laid out for the new backend
  released?: boolean; // what the old backend held (cgroup, uid, containers) is given back
}

export interface CellRecord {
  formatVersion: typeof RECORD_FORMAT;
  uid: string; // one incarnation of the name; a re-created cell gets a new uid
  // One life of the cell for publication (the forge comments' marker): set at create, new at each
  // resurrection, kept through a replacement. Records from before it: the uid.
  life?: string;
  name: string;
  state: CellState;
  project: string;
  owner: string;
  backend: BackendName;
  network?: "none" | "host" | "egress"; // its own loopback only, the host network, or an allowlist
  egress?: EgressEntry[]; // network egress: the list in force (declared and automatic entries)
  sandbox?: { uid: number; gid: number; cgroup: string }; // sandbox: the uid and cgroup of the cell
  container?: ContainerSpec; // container: the image and user members start with
  containerUid?: { uid: number; gid: number }; // container: the cell's own uid (owns its dirs)
  kubernetes?: KubernetesSpec; // kubernetes: namespace, image, storage and cluster members start with
  remote?: RemoteTarget; // remote: the host the cell's tree and members live on
  remoteDir?: string; // remote: the cell's tree on that host (absolute), set when it is laid out
  containerEngine?: "podman" | "docker"; // container: the engine its members run in (recorded at prepare)
  labels: Record<string, string>;
  budget?: CellBudget; // spec.budget as declared: what the model gateway lets its members spend
  sourceFile: string;
  ttlMs: number;
  graceMs: number;
  retentionMs: number;
  policy: { allowGuests: boolean; allowSubstitutes: boolean };
  credentialsDigest: string; // a digest of the declared sources (never of values)
  brokered?: string[]; // credentials the model gateway holds: left out of the manifest
  credentialsValueDigest?: string; // a keyed digest (HMAC) of the values in the manifest, to see a rotation
  createdAt: string;
  activatedAt?: string;
  expiresAt?: string;
  closedAt?: string;
  downedAt?: string; // when the cell last went downed (no executor up)
  downedTimeoutMs?: number;
  inviteTtlMs?: number;
  checkpointSchedule?: string;
  checkpointKeep?: number;
  checkpointCompression?: "gzip" | "zstd"; // unset: the host's default
  checkpointMaxBytes?: number; // spec.checkpoint.maxSize; unset: the host's LAZARUS_CHECKPOINT_MAX_SIZE
  // The last checkpoint refused for its size (cleared by the next one taken): status shows it, and
  // a scheduled checkpoint is not retried before the schedule's next time.
  checkpointRefused?: { at: string; error: string };
  restoredFrom?: string;
  safetyCheckpoints?: string[]; // taken before a substitute's restore: copies, never a restore source
  closeReason?: string;
  closedDigest?: string | null; // desiredDigest() of the declaration when it closed; null when it was removed
  archivedAt?: string;
  logs?: { maxBytes?: number; keep?: number }; // spec.logs as declared; members start with it (else the host's default)
  // The cell's disk quota in force (sandbox, container): its backend keeps project/, shared/ and
  // home/ on an image of this size (src/backends/disk/). Set when the image is made or grown.
  disk?: { bytes: number };
  diskFull?: { since: string; avail: number }; // the quota was reached (an event said so); cleared when room is back
  push?: PushSpec; // spec.push in force: the branch pushed at checkpoint and close (src/forge/pushes.ts)
  progress?: ProgressSpec; // spec.progress in force: the cell is judged for progress (src/progress/)
  python?: { digest: string }; // the venv in force (.lazarus/venvs/<digest>), set once it is complete
  members: MemberRecord[];
  updatedAt: string;
  lastAppliedRevision?: string; // the config commit of the last action applied to this cell
  replacing?: Replacing;
}
