// The kubernetes backend: a cell's members as Pods (or agent-sandbox Sandboxes) in a cluster, its
// tree on a PersistentVolumeClaim, its credentials in a Secret, its network behind a
// NetworkPolicy (render.ts makes the objects). There is no local process: a member is known by
// its spawn id, which labels its pod, and its state is the pod's phase. The contract's
// synchronous questions (isAlive, find) are answered from what refresh() last read from the
// cluster; observe refreshes every kubernetes cell before anything is planned.
import { entryText } from "../../egress/allow.js";
import { rm } from "node:fs/promises";
import path from "node:path";
import { cellPaths } from "../../cells/layout.js";
import type { CellRecord, MemberRecord } from "../../cells/record.js";
import type { KubernetesSpec } from "../../config/types.js";
import { LazarusError } from "../../util/errors.js";
import { CAPS, readUntrustedJson } from "../../util/safe-fs.js";
import type { Backend, MemberRef, SessionSpawn, StartSpec, Started } from "../backend.js";
import { clientFor, type PodState } from "./client.js";
import {
  LABEL_CELL,
  LABEL_MEMBER,
  LABEL_SPAWN,
  LABEL_UID,
  SANDBOX_API,
  cellObjects,
  labelValue,
  workload,
  type RenderCell,
  type RenderMember,
} from "./render.js";

// What the last refresh read, per cell incarnation (record uid): its pods.
const seen = new Map<string, { cell: string; pods: PodState[] }>();

const specOf = (rec: CellRecord): KubernetesSpec => {
  if (!rec.kubernetes) throw new LazarusError("BUG", `kubernetes cell ${rec.name} has no spec.kubernetes recorded`);
  return rec.kubernetes;
};
const target = (k: KubernetesSpec) => ({ kubeconfig: k.kubeconfig, context: k.context });
const uidSelector = (rec: CellRecord): string => `${LABEL_CELL}=${rec.name},${LABEL_UID}=${labelValue(rec.uid)}`;
const LIVE_PHASES = new Set(["Pending", "Running", "Unknown"]);

// The pods of these cells, read from their clusters (one list per cell).
export async function refresh(recs: readonly CellRecord[]): Promise<void> {
  for (const rec of recs) {
    if (rec.backend !== "kubernetes" || !rec.kubernetes) continue;
    const c = await clientFor(target(rec.kubernetes));
    seen.set(rec.uid, { cell: rec.name, pods: await c.pods(rec.kubernetes.namespace, uidSelector(rec)) });
  }
}

const podOf = (cellUid: string | undefined, spawnId: string | undefined): PodState | undefined => {
  if (!spawnId) return undefined;
  const byUid = cellUid ? [seen.get(cellUid)] : [...seen.values()];
  for (const s of byUid) for (const p of s?.pods ?? []) if (p.labels[LABEL_SPAWN] === labelValue(spawnId)) return p;
  return undefined;
};

export interface MemberView {
  alive: boolean;
  exit?: { code: number; at: number; oom?: boolean };
}

// A member as the last refresh saw it: alive while its pod is pending or running; its
// container's exit once the pod ended; neither when its pod is gone (deleted, evicted).
export function memberView(rec: CellRecord, m: Pick<MemberRecord, "spawnId">): MemberView {
  const p = podOf(rec.uid, m.spawnId);
  if (!p) return { alive: false };
  if (LIVE_PHASES.has(p.phase)) return { alive: true };
  return { alive: false, ...(p.exit ? { exit: p.exit } : {}) };
}

// The objects of a recorded cell (for apply): its members from the record, the TTL left.
export function renderRecord(rec: CellRecord, credentials: Record<string, string>, now = Date.now()): RenderCell {
  const expires = rec.expiresAt ? Date.parse(rec.expiresAt) : now + rec.ttlMs;
  return {
    name: rec.name,
    uid: rec.uid,
    network: rec.network ?? "none",
    ...(rec.egress ? { egress: rec.egress.map(entryText) } : {}),
    kubernetes: specOf(rec),
    deadlineSeconds: Math.ceil((expires - now) / 1000),
    expiresAt: new Date(Math.floor(expires / 1000) * 1000).toISOString().replace(".000Z", "Z"), // RFC 3339, whole seconds
    credentials: { values: credentials },
    members: rec.members.map((m) => toRenderMember(m)),
  };
}

const toRenderMember = (m: MemberRecord, spawnId?: string): RenderMember => ({
  identity: m.identity,
  home: m.home,
  role: m.role,
  ...(m.command ? { command: m.command } : {}),
  env: m.env,
  resources: m.resources ?? {},
  ...(spawnId ? { spawnId } : {}),
});

export class KubernetesBackend implements Backend {
  readonly name = "kubernetes";

  // The cell's Secret (from its credentials manifest), volume claim and NetworkPolicy.
  async prepareCell(rec: CellRecord, cellDir: string): Promise<void> {
    const k = specOf(rec);
    // The manifest apply wrote (never an empty stand-in: that would blank the cluster's Secret).
    const file = cellPaths(cellDir).credentials;
    const manifest = await readUntrustedJson<{ credentials?: Record<string, string> }>(file, CAPS.record, cellDir);
    if (!manifest?.credentials)
      throw new LazarusError(
        "CREDENTIALS_MISSING",
        `cell ${rec.name}: no credentials manifest at ${file} to fill its Secret from (it is written when the cell is created or its credentials change)`,
      );
    const c = await clientFor(target(k));
    for (const o of cellObjects(renderRecord(rec, manifest.credentials))) await c.apply(o);
  }

  // The member's workload, named and labelled by its spawn id; any earlier one of that member goes.
  async start(rec: CellRecord, spec: StartSpec): Promise<Started> {
    const k = specOf(rec);
    const m = rec.members.find((x) => x.identity === spec.identity);
    if (!m) throw new LazarusError("BUG", `member ${spec.identity} is not in the record of cell ${rec.name}`);
    const c = await clientFor(target(k));
    await this.deleteMember(rec, m, 0, spec.spawnId);
    // The command as declared: it names a program in the image, never a path of this host.
    const obj = workload(renderRecord(rec, {}), toRenderMember(m, spec.spawnId));
    await c.apply(obj);
    // Seen at once as pending, so this run does not start it twice.
    const s = seen.get(rec.uid) ?? { cell: rec.name, pods: [] };
    s.pods.push({ name: obj.metadata.name, labels: { ...obj.metadata.labels }, phase: "Pending", deleting: false });
    seen.set(rec.uid, s);
    return { pid: 0, startTime: Date.now(), handle: `${k.namespace}/${obj.metadata.name}` };
  }

  isAlive(m: MemberRef): boolean {
    const p = podOf(undefined, m.spawnId);
    return p !== undefined && p.labels[LABEL_CELL] === m.cell && LIVE_PHASES.has(p.phase);
  }

  find(cell: string, spawnId: string): Started | undefined {
    const p = podOf(undefined, spawnId);
    if (!p || p.labels[LABEL_CELL] !== cell || !LIVE_PHASES.has(p.phase)) return undefined;
    return { pid: 0, startTime: p.createdAt ?? 0, handle: p.name };
  }

  // Delete the member's workloads (all of them but keep), gracefully: the kubelet sends SIGTERM,
  // then SIGKILL after the grace period.
  private async deleteMember(
    rec: CellRecord,
    m: Pick<MemberRecord, "home">,
    graceSeconds: number,
    keep?: string,
  ): Promise<void> {
    const k = specOf(rec);
    const c = await clientFor(target(k));
    const selector = `${uidSelector(rec)},${LABEL_MEMBER}=${labelValue(m.home)}`;
    const kinds: [string, string][] = k.workload === "sandbox" ? [[SANDBOX_API, "Sandbox"]] : [["v1", "Pod"]];
    for (const [apiVersion, kind] of kinds) {
      for (const o of await c.list(apiVersion, kind, k.namespace, selector)) {
        if (keep && o.metadata.labels?.[LABEL_SPAWN] === labelValue(keep)) continue;
        await c.delete(apiVersion, kind, k.namespace, o.metadata.name, graceSeconds);
      }
    }
  }

  async stop(rec: CellRecord, m: MemberRecord, timeoutMs: number): Promise<void> {
    await this.deleteMember(rec, m, Math.ceil(timeoutMs / 1000));
    const s = seen.get(rec.uid);
    if (s) s.pods = s.pods.filter((p) => p.labels[LABEL_MEMBER] !== labelValue(m.home));
  }

  // A pod cannot be signalled through the API: a portfolio change reaches a kubernetes member
  // only by a restart (onPortfolioChange: restart).
  signal(): boolean {
    return false;
  }

  async restore(rec: CellRecord): Promise<void> {
    throw new LazarusError(
      "NOT_SUPPORTED",
      `cell ${rec.name}: restoring a kubernetes cell from a checkpoint is not supported yet (docs/kubernetes.md)`,
    );
  }

  // The cell's local dirs only (the tree on the claim is the cluster's).
  async clear(_rec: CellRecord, base: string, dirs: readonly string[]): Promise<void> {
    for (const d of dirs) await rm(path.join(base, d), { recursive: true, force: true });
  }

  async freeze(rec: CellRecord): Promise<void> {
    throw new LazarusError(
      "NOT_SUPPORTED",
      `cell ${rec.name}: checkpoints of a kubernetes cell are not supported yet (docs/kubernetes.md)`,
    );
  }

  // Delete every workload of the cell incarnation; none is left to report by pid.
  async stopCell(rec: CellRecord): Promise<number[]> {
    const k = specOf(rec);
    const c = await clientFor(target(k));
    for (const [apiVersion, kind] of k.workload === "sandbox"
      ? [
          [SANDBOX_API, "Sandbox"],
          ["v1", "Pod"],
        ]
      : [["v1", "Pod"]]) {
      for (const o of await c.list(apiVersion as string, kind as string, k.namespace, uidSelector(rec)))
        await c.delete(apiVersion as string, kind as string, k.namespace, o.metadata.name);
    }
    seen.delete(rec.uid);
    return [];
  }

  // Scrub: the Secret, the volume claim (the cell's tree) and the NetworkPolicy of this
  // incarnation go (found by its labels: a later cell of the same name keeps its own).
  async releaseCell(rec: CellRecord): Promise<void> {
    const k = specOf(rec);
    const c = await clientFor(target(k));
    for (const [apiVersion, kind] of [
      ["v1", "Secret"],
      ["v1", "PersistentVolumeClaim"],
      ["networking.k8s.io/v1", "NetworkPolicy"],
    ] as const) {
      for (const o of await c.list(apiVersion, kind, k.namespace, uidSelector(rec)))
        await c.delete(apiVersion, kind, k.namespace, o.metadata.name);
    }
  }

  // `kubectl exec` into the member's pod is the way in for now: Lazarus does not open sessions there.
  async session(rec: CellRecord): Promise<SessionSpawn> {
    throw new LazarusError(
      "NOT_SUPPORTED",
      `cell ${rec.name}: shell and exec are not supported on the kubernetes backend yet; use kubectl exec into the member's pod (docs/kubernetes.md)`,
    );
  }
}
