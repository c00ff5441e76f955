// Where a cell and its members run, per backend, from the cell's record alone (status never asks
// a backend or an engine: it reads what apply recorded). One entry per backend in WHERE; a
// backend without one shows its name and no place. The local backends run on this host.
//
// A backend adds its entry to WHERE (remote: the SSH host; kubernetes: the kubeconfig context as
// the host, the namespace, and each member's pod).
import { hostname } from "node:os";
import type { CellRecord, MemberRecord } from "../cells/record.js";
import { containerName } from "../backends/container/argv.js";

// Every field optional and additive: each backend fills in what applies to it.
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

interface WhereOf {
  cell(rec: CellRecord): CellWhere;
  member?(rec: CellRecord, m: MemberRecord): MemberWhere | undefined;
  text(w: CellWhere): string; // after "on <backend> at <host>"
}

export const WHERE: Record<string, WhereOf> = {
  process: {
    cell: () => ({ host: hostname() }),
    text: () => "",
  },
  sandbox: {
    cell: (rec) => ({ host: hostname(), uid: rec.sandbox?.uid ?? null, cgroup: rec.sandbox?.cgroup ?? null }),
    member: (rec, m) => (rec.sandbox ? { cgroup: `${rec.sandbox.cgroup}/${m.home}` } : undefined),
    text: (w) => [w.uid != null ? `uid ${w.uid}` : "", w.cgroup ? `cgroup ${w.cgroup}` : ""].filter(Boolean).join(", "),
  },
  container: {
    cell: (rec) => ({ host: hostname(), engine: rec.containerEngine ?? null, image: rec.container?.image ?? null, uid: rec.containerUid?.uid ?? null }),
    member: (_rec, m) => (m.spawnId && m.command ? { container: containerName(m.spawnId) } : undefined),
    text: (w) => [w.engine ? `${w.engine}` : "", w.image ? `image ${w.image}` : "", w.uid != null ? `uid ${w.uid}` : ""].filter(Boolean).join(", "),
  },
  remote: {
    cell: (rec) => ({ host: rec.remote?.host ?? null }),
    text: () => "",
  },
  kubernetes: {
    cell: (rec) => ({ host: rec.kubernetes?.context ?? null, namespace: rec.kubernetes?.namespace ?? null, image: rec.kubernetes?.image ?? null }),
    member: (_rec, m) => (m.handle ? { pod: m.handle } : undefined),
    text: (w) => [w.namespace ? `namespace ${w.namespace}` : "", w.image ? `image ${w.image}` : ""].filter(Boolean).join(", "),
  },
};

export function cellWhere(rec: CellRecord): CellWhere {
  return WHERE[rec.backend]?.cell(rec) ?? {};
}

export function memberWhere(rec: CellRecord, m: MemberRecord): MemberWhere | null {
  return WHERE[rec.backend]?.member?.(rec, m) ?? null;
}

// "on sandbox at box1: uid 239400, cgroup lazarus/c1-0a1b2c3d"
export function whereText(backend: string, w: CellWhere): string {
  const detail = WHERE[backend]?.text(w) ?? "";
  return `on ${backend}${w.host ? ` at ${w.host}` : ""}${w.namespace ? ` in namespace ${w.namespace}` : ""}${detail ? `: ${detail}` : ""}`;
}
