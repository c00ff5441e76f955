// The declared fields of a cell, one row each, and what a change of each does to a live cell.
// This table is the one place a cell field is wired after loading: the record sync (syncRecord),
// the planner's update detection and its words (cellChanges), what applying an update does (the
// backend prepares the cell again, members restart), and, for every other field, which action
// follows it. Every field of schemas/cell.schema.json is named by a row: test/cells/fields.test.ts
// fails, naming the field, when one is not (README.md, "A new cell field").
import type { CellRecord, MemberRecord } from "./record.js";
import type { DesiredCell, DesiredMember, Resources } from "../config/types.js";
import { canonicalJson, credentialsDigest } from "../config/digest.js";
import { samePlace } from "../backends/remote/place.js";
import { formatBytes } from "../config/quantity.js";
import { formatDuration } from "../config/durations.js";
import { egressList } from "../egress/allow.js";
import { egressChanged, egressReason, egressSummary } from "../plan/egress.js";
import { findBackend } from "../backends/table.js";

// What the planner compares for one live cell: its declaration, its record, its disk as observed.
export interface Seen {
  d: DesiredCell;
  rec: CellRecord;
  disk?: { mounted: boolean } | undefined; // the cell's disk image (a cell with a quota)
}

// A field whose change is an update of the live cell, in place (the `update` action).
export interface UpdateRow {
  field: string; // its name in the update's fields (plan --json, the ledger)
  paths: readonly string[]; // the schema fields it covers: dotted, [] for an array's items
  // Read only by the backends that claim it (their capabilities' cellFields): a change on any other
  // backend plans nothing. The hook for the backend contract: a backend claims a field, the core
  // never names a backend.
  backend?: true;
  // Writes the declaration into the record (create, update, resurrect, replace). None: a step of
  // apply records it once done (the venv, the disk image).
  sync?(rec: CellRecord, d: DesiredCell): void;
  changed(s: Seen): boolean; // whether the record is behind the declaration
  reason?(s: Seen): string; // how plan says the change; default "<field> changed"
  // What applying it does beyond the record: prepare: the backend prepares the cell again (its
  // proxy, network policy or objects follow; members keep running); restart: running members are
  // stopped and started into it; step: update runs a step of its own named by the field
  // (src/apply/ops.ts: credentials written, disk image changed, venv built), which may restart.
  prepare?: true;
  restart?: true;
  step?: true;
}

// How a change of any other field reaches the cell: never through an update.
export type Handler =
  | "constant" // always the same value
  | "identity" // names the cell or member: another value is another cell or member
  | "creation" // read when the cell is made (a live cell keeps what it was made with)
  | "refused" // cannot change on a live cell: plan reports the change as an error
  | "replace" // where the cell runs: a change replaces it whole (replacementForces below)
  | "renew" // a longer life (renew action)
  | "close" // the close action
  | "members" // the member planner (src/plan/members.ts): invite, remove, restart, substitutes
  | "portfolio"; // which portfolio a member resolves to (update-portfolio action)

export interface OtherRow {
  paths: readonly string[];
  by: Handler;
  note: string;
  // by "replace": whether the record is behind the declaration. Marked backend: only a backend
  // whose capabilities list the path in replacedBy is replaced for it (the hook for the backend
  // contract: a backend says which of its fields force a replacement, the core names none).
  changed?(s: Seen): boolean;
  backend?: true;
}

// Equal as JSON, key order aside (a plan compares every field of every live cell: scalars directly).
const same = (a: unknown, b: unknown): boolean =>
  a === b || (typeof a === "object" && typeof b === "object" && canonicalJson(a) === canonicalJson(b));

// A field recorded as declared: sync writes each key (deleted when not declared), and the record is
// behind when any key differs as JSON (key order aside; `unset` is what an absent key means).
type Keys = readonly (readonly [keyof CellRecord, (d: DesiredCell) => unknown])[];
function kept(keys: Keys, unset: Partial<CellRecord> = {}): Pick<UpdateRow, "sync" | "changed"> {
  return {
    sync(rec, d) {
      const r = rec as unknown as Record<string, unknown>;
      for (const [key, declared] of keys) {
        const v = declared(d);
        if (v === undefined) delete r[key];
        else r[key] = typeof v === "object" ? structuredClone(v) : v;
      }
    },
    changed: ({ d, rec }) => keys.some(([key, declared]) => !same(declared(d) ?? null, rec[key] ?? unset[key] ?? null)),
  };
}

// The values behind the credentials changed (both known): a rotated secret reaches the cell.
const rotated = ({ d, rec }: Seen): boolean =>
  d.credentialsValueDigest !== undefined &&
  rec.credentialsValueDigest !== undefined &&
  d.credentialsValueDigest !== rec.credentialsValueDigest;

// Which credentials the model gateway holds changed (the operator's provider table, the setting).
const brokerChanged = ({ d, rec }: Seen): boolean => !same(d.gateway?.brokered ?? [], rec.brokered ?? []);

function pythonReason({ d, rec }: Seen): string {
  if (!d.python) return "python venv removed (members restart)";
  const what = d.python.requirements ? `requirements ${d.python.requirements}` : "a bare venv";
  return `python venv ${rec.python ? `${rec.python.digest} → ${d.python.digest}` : `new`} (${what}; built, then members restart)`;
}

// What an update does to the cell's disk quota, in words, or undefined: an image that is not
// mounted (a reboot) is mounted again before members start; a new quota (a cell made before it
// had one) moves the cell's files onto an image, a larger one grows the image, both with the
// members stopped. A smaller one is never applied (plan says why: a live cell's disk never shrinks).
export function diskChange({ d, rec, disk }: Seen): string | undefined {
  const wanted = d.disk?.enforced ? d.disk.bytes : undefined;
  const have = rec.disk?.bytes;
  if (have !== undefined && disk && !disk.mounted)
    return `disk image of ${formatBytes(have)} not mounted: mounted again before members start`;
  if (wanted === undefined) return undefined;
  if (have === undefined)
    return `disk quota none → ${formatBytes(wanted)} (the cell's files move onto its image; members restart)`;
  if (wanted > have)
    return `disk quota ${formatBytes(have)} → ${formatBytes(wanted)} (the image grows; members restart)`;
  return undefined;
}

// A remote cell stays on the host it was made on (its tree and members are there); only how
// Lazarus reaches it (its key files) follows the declaration.
// Another host (or user, port, root) is not followed (plan refuses it: the remote backend's
// `unfollowed`): the declaration's connection, when it is followed, else undefined.
type Target = NonNullable<CellRecord["remote"]>;
function remoteFollowed(d: DesiredCell, rec: CellRecord): Target | undefined {
  const t = d.remote?.target;
  return t && (!rec.remote || samePlace(rec.remote, t)) ? t : undefined;
}

// The connection fields the record is behind on (identityFile, knownHosts, name).
function remoteChanges({ d, rec }: Seen): string[] {
  const t = remoteFollowed(d, rec);
  if (!t) return [];
  const was: Partial<Target> = rec.remote ?? {};
  return (["name", "identityFile", "knownHosts"] as const).filter((k) => (t[k] ?? null) !== (was[k] ?? null));
}

function budgetText(b: CellRecord["budget"]): string {
  if (!b) return "none";
  const parts = [b.tokens !== undefined ? `${b.tokens} tokens` : "", b.cost !== undefined ? `cost ${b.cost}` : ""];
  return `${parts.filter(Boolean).join(" and ")} per ${formatDuration(b.periodMs)}`;
}

// The update fields, in the order plan lists them.
export const UPDATE_FIELDS: readonly UpdateRow[] = [
  { field: "labels", paths: ["metadata.labels"], ...kept([["labels", (d) => d.labels]]) },
  { field: "owner", paths: ["spec.owner"], ...kept([["owner", (d) => d.owner]]) },
  {
    field: "network",
    paths: ["spec.network"],
    backend: true,
    ...kept([["network", (d) => d.network]], { network: "none" }),
    reason: ({ d, rec }) => `network ${rec.network ?? "none"} → ${d.network}${egressSummary(d)} (members restart)`,
    prepare: true,
    restart: true,
  },
  {
    field: "egress",
    paths: ["spec.network.egress"],
    backend: true,
    sync(rec, d) {
      if (d.egress) rec.egress = egressList(d.egress);
      else delete rec.egress;
    },
    changed: ({ d, rec }) => egressChanged(d, rec), // a change of network says the list itself
    reason: ({ d, rec }) => egressReason(d, rec),
    prepare: true,
  },
  {
    field: "kubernetes",
    paths: [
      "namespace",
      "image",
      "workload",
      "storageClass",
      "storage",
      "accessMode",
      "runAsUser",
      "egress[].cidr",
      "egress[].ports",
      "kubeconfig",
      "context",
    ].map((p) => `spec.kubernetes.${p}`),
    backend: true,
    ...kept([["kubernetes", (d) => d.kubernetes]]),
    reason: () => "spec.kubernetes changed (members restart)",
    prepare: true,
    restart: true,
  },
  {
    field: "container",
    paths: ["spec.container.user", "spec.container.readOnlyRootfs"], // its image: a replacement
    backend: true,
    ...kept([["container", (d) => d.container]]),
    reason: ({ d, rec }) => `container ${rec.container?.image ?? "?"} → ${d.container?.image ?? "?"} (members restart)`,
    restart: true,
  },
  { field: "grace", paths: ["spec.grace"], ...kept([["graceMs", (d) => d.graceMs]]) },
  { field: "retention", paths: ["spec.retention"], ...kept([["retentionMs", (d) => d.retentionMs]]) },
  {
    field: "policy",
    paths: ["spec.policy.allowGuests", "spec.policy.allowSubstitutes"],
    ...kept([["policy", (d) => d.policy]]),
  },
  {
    field: "credentials",
    paths: ["spec.credentials"],
    // The record keeps a digest of the sources (never values); the digest of the values is
    // recorded when the manifest is written (src/apply/credentials.ts).
    sync(rec, d) {
      rec.credentialsDigest = credentialsDigest(d.credentials);
      if (d.gateway?.brokered.length) rec.brokered = [...d.gateway.brokered];
      else delete rec.brokered;
    },
    changed: (s) => credentialsDigest(s.d.credentials) !== s.rec.credentialsDigest || rotated(s) || brokerChanged(s),
    reason: (s) =>
      credentialsDigest(s.d.credentials) !== s.rec.credentialsDigest
        ? "credentials changed (redacted)"
        : brokerChanged(s)
          ? `brokered credentials ${(s.rec.brokered ?? []).join(", ") || "none"} → ${(s.d.gateway?.brokered ?? []).join(", ") || "none"} (the model gateway holds them; the manifest is written again)`
          : "credentials rotated",
    prepare: true,
    step: true,
  },
  { field: "downedTimeout", paths: ["spec.downedTimeout"], ...kept([["downedTimeoutMs", (d) => d.downedTimeoutMs]]) },
  { field: "inviteTtl", paths: ["spec.inviteTtl"], ...kept([["inviteTtlMs", (d) => d.inviteTtlMs]]) },
  {
    field: "checkpoint",
    paths: [
      "spec.checkpoint.schedule",
      "spec.checkpoint.keep",
      "spec.checkpoint.compression",
      "spec.checkpoint.maxSize",
    ],
    ...kept([
      ["checkpointSchedule", (d) => d.checkpoint.schedule],
      ["checkpointKeep", (d) => d.checkpoint.keep],
      ["checkpointCompression", (d) => d.checkpoint.compression],
      ["checkpointMaxBytes", (d) => d.checkpoint.maxBytes],
    ]),
  },
  {
    field: "python",
    paths: ["spec.runtime.python.requirements", "spec.runtime.python.findLinks"],
    // Recorded once the venv is complete (src/runtime/python.ts); members restart when it was rebuilt.
    changed: ({ d, rec }) => (d.python?.digest ?? null) !== (rec.python?.digest ?? null),
    reason: pythonReason,
    step: true,
  },
  { field: "logs", paths: ["spec.logs.maxSize", "spec.logs.keep"], ...kept([["logs", (d) => d.logs]]) },
  {
    field: "budget",
    paths: ["spec.budget.tokens", "spec.budget.cost", "spec.budget.period"],
    ...kept([["budget", (d) => d.budget]]),
    reason: ({ d, rec }) =>
      `budget ${budgetText(rec.budget)} → ${budgetText(d.budget)} (the next model call counts it; members keep running)`,
    step: true, // the model gateway's file of the cell is written again (src/gateway/cells.ts)
  },
  {
    // Read at every plan (src/plan/progress.ts): never a restart. Its step: a newly declared
    // progress starts the slice clock (src/progress/state.ts); a new slice or onStall keeps it.
    field: "progress",
    paths: ["spec.progress.slice", "spec.progress.onStall"],
    ...kept([["progress", (d) => d.progress]]),
    reason: ({ d, rec }) =>
      !d.progress
        ? "progress no longer judged"
        : `progress slice ${formatDuration(d.progress.sliceMs)}, onStall ${d.progress.onStall}${rec.progress ? "" : " (the clock starts now)"}`,
    step: true,
  },
  {
    // Read by publication after each apply (src/forge/pushes.ts): the next checkpoint or close pushes it.
    field: "push",
    paths: ["spec.push.branch"],
    ...kept([["push", (d) => d.push]]),
    reason: ({ d, rec }) =>
      `push ${rec.push?.branch ?? "none"} → ${d.push?.branch ?? "none"} (from the next checkpoint or close; members keep running)`,
  },
  {
    field: "disk",
    paths: ["spec.resources.disk"],
    // Recorded when the image is made or grown (setDisk in src/apply/ops.ts, the update's step).
    changed: (s) => diskChange(s) !== undefined,
    reason: (s) => diskChange(s) as string,
    step: true,
  },
  {
    field: "remote",
    paths: ["name", "host", "user", "port", "identityFile", "knownHosts", "root"].map((p) => `spec.remote.${p}`),
    backend: true,
    sync(rec, d) {
      const t = remoteFollowed(d, rec);
      if (t) rec.remote = { ...t };
    },
    changed: (s) => remoteChanges(s).length > 0,
    // Lazarus reads the record at every connection: nothing else to do.
    reason: (s) => `remote ${remoteChanges(s).join(", ")} changed (the next connection uses it; members keep running)`,
  },
];

// Every other declared field, and what follows a change of it.
export const OTHER_FIELDS: readonly OtherRow[] = [
  { paths: ["apiVersion", "kind"], by: "constant", note: "lazarus/v1, Cell" },
  { paths: ["metadata.name"], by: "identity", note: "another name is another cell" },
  {
    paths: ["spec.project"],
    by: "refused",
    note: "a live cell keeps its project: plan says a change is an error (close the cell first)",
  },
  { paths: ["spec.restoreFrom"], by: "creation", note: "read when the cell is made" },
  {
    paths: ["spec.backend"],
    by: "replace",
    note: "where members run: the cell is replaced whole (close + create from its checkpoint)",
    changed: ({ d, rec }) => d.backend !== rec.backend,
  },
  {
    paths: ["spec.container.image"],
    by: "replace",
    backend: true,
    note: "its members' whole filesystem: the cell is replaced whole",
    changed: ({ d, rec }) => d.container?.image !== rec.container?.image,
  },
  { paths: ["spec.ttl"], by: "renew", note: "a new ttl renews the cell (or closes it if already past)" },
  { paths: ["spec.state"], by: "close", note: "closed closes the cell" },
  {
    paths: ["spec.resources.memory", "spec.resources.pids", "spec.resources.cpu"],
    by: "members",
    note: "each member's limits unless it declares its own: a change restarts the members it reaches",
  },
  { paths: ["spec.taskClass"], by: "portfolio", note: "its members' portfolios are chosen again (MEMBER_FIELDS)" },
];

// A member's declared field: how the member's record keeps it (written when the member is invited,
// restarted, substituted or resurrected: the member planner reads the declaration itself), and,
// for its process, how plan says a change that restarts it.
export interface MemberRow {
  paths: readonly string[];
  by: Handler;
  note: string;
  sync?(m: MemberRecord, dm: DesiredMember): void;
  // Part of the member's process: the words of a restart for it when declaration and record differ.
  restartFor?(dm: ProcessSpec, m: ProcessSpec): string | undefined;
}

// What a member's process is started with, as declared or as recorded.
export type ProcessSpec = {
  command?: string[] | undefined;
  env: Record<string, string>;
  resources?: Resources | undefined;
};
const differs = (a: unknown, b: unknown): boolean => canonicalJson(a) !== canonicalJson(b);

export const MEMBER_FIELDS: readonly MemberRow[] = [
  {
    paths: ["spec.members[].identity"],
    by: "identity",
    note: "another identity is another member (removed, invited); its name is its home",
  },
  {
    paths: ["spec.members[].role"],
    by: "members",
    note: "roles are immutable: the member leaves and is invited again",
  },
  {
    paths: ["spec.members[].command"],
    by: "members",
    note: "its process: a change restarts it",
    sync(m, dm) {
      if (dm.command) m.command = [...dm.command];
      else delete m.command;
    },
    restartFor: (dm, m) =>
      !differs(dm.command ?? null, m.command ?? null)
        ? undefined
        : !m.command
          ? "command added"
          : !dm.command
            ? "command removed"
            : "command changed",
  },
  {
    paths: ["spec.members[].env"],
    by: "members",
    note: "its process: a change restarts it",
    sync(m, dm) {
      m.env = { ...dm.env };
    },
    restartFor: (dm, m) => (differs(dm.env, m.env) ? "env changed" : undefined),
  },
  {
    paths: ["spec.members[].resources.memory", "spec.members[].resources.pids", "spec.members[].resources.cpu"],
    by: "members",
    note: "its limits (else the cell's spec.resources): a change restarts it",
    sync(m, dm) {
      if (Object.keys(dm.resources).length) m.resources = { ...dm.resources };
      else delete m.resources;
    },
    restartFor: (dm, m) => (differs(dm.resources ?? {}, m.resources ?? {}) ? "resources changed" : undefined),
  },
  {
    paths: ["spec.members[].restart", "spec.members[].heartbeat"],
    by: "members",
    note: "read from the declaration at every plan; recorded when the member next starts",
    sync(m, dm) {
      m.restart = dm.restart;
      if (dm.heartbeatMs !== undefined) m.heartbeatMs = dm.heartbeatMs;
      else delete m.heartbeatMs;
    },
  },
  {
    paths: ["spec.members[].replaces"],
    by: "members",
    note: "a substitute stands in while the member it replaces is down",
    sync(m, dm) {
      if (dm.replaces) m.replaces = dm.replaces;
      else delete m.replaces;
    },
  },
  {
    paths: ["spec.members[].taskClass", "spec.members[].portfolio", "spec.members[].onPortfolioChange"],
    by: "portfolio",
    note: "the member's portfolio is rewritten (and it is signalled or restarted as onPortfolioChange says)",
  },
];

// The declared process spec and policies, as the member runs from now on.
export function syncMember(m: MemberRecord, dm: DesiredMember): void {
  for (const row of MEMBER_FIELDS) row.sync?.(m, dm);
}

// Why a member's process must restart to run as declared (command, env, limits; key order aside),
// or undefined when it runs so already.
export function processChange(dm: ProcessSpec, m: ProcessSpec): string | undefined {
  for (const row of MEMBER_FIELDS) {
    const why = row.restartFor?.(dm, m);
    if (why) return why;
  }
  return undefined;
}

// Whether a change of the row counts for a cell on backend b (see UpdateRow.backend).
const counts = (row: UpdateRow, d: DesiredCell): boolean =>
  !row.backend || (findBackend(d.backend)?.capabilities.cellFields ?? []).includes(row.field);

// The declared fields that cannot change in place, as schema paths: another backend (alone: the
// cell moves, nothing else is compared), or a field its backend is replaced for. Empty: an update.
export function replacementForces(s: Seen): string[] {
  const moved = REPLACE_ROWS.find((r) => !r.backend && r.changed?.(s));
  if (moved) return [...moved.paths];
  const claimed = findBackend(s.d.backend)?.capabilities.replacedBy ?? [];
  if (claimed.length === 0) return [];
  return REPLACE_ROWS.filter((r) => r.backend && r.paths.some((p) => claimed.includes(p)) && r.changed?.(s)).flatMap(
    (r) => r.paths,
  );
}
const REPLACE_ROWS = OTHER_FIELDS.filter((r) => r.by === "replace" && r.changed);

// The update fields where the record is behind the declaration, in the table's order, each with
// how plan says it.
export function cellChanges(s: Seen): { field: string; reason: string }[] {
  const out: { field: string; reason: string }[] = [];
  for (const row of UPDATE_FIELDS) {
    if (counts(row, s.d) && row.changed(s))
      out.push({ field: row.field, reason: row.reason ? row.reason(s) : `${row.field} changed` });
  }
  return out;
}

// The declaration, written into the record (what the cell runs with from now on).
export function syncRecord(rec: CellRecord, d: DesiredCell): void {
  rec.sourceFile = d.source.file;
  for (const row of UPDATE_FIELDS) row.sync?.(rec, d);
}

const row = (field: string): UpdateRow | undefined => UPDATE_FIELDS.find((r) => r.field === field);
// Whether an update of these fields has the backend prepare the cell again, restart its members.
export const updatePrepares = (fields: readonly string[]): boolean => fields.some((f) => row(f)?.prepare);
export const updateRestarts = (fields: readonly string[]): boolean => fields.some((f) => row(f)?.restart);
