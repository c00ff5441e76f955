// Where a cell and its members run, per backend, from the cell's record alone (status never asks
// a backend or an engine: it reads what apply recorded). Each backend says it (BackendSpec.where);
// one without a place shows its name. The local backends run on this host.
import type { CellRecord, MemberRecord } from "../cells/record.js";
import { findBackend } from "../backends/table.js";
import type { CellWhere, MemberWhere } from "../backends/contract.js";

export type { CellWhere, MemberWhere } from "../backends/contract.js";

export function cellWhere(rec: CellRecord): CellWhere {
  return findBackend(rec.backend)?.where.cell(rec) ?? {};
}

export function memberWhere(rec: CellRecord, m: MemberRecord): MemberWhere | null {
  return findBackend(rec.backend)?.where.member?.(rec, m) ?? null;
}

// "on sandbox at box1: uid 239400, cgroup lazarus/c1-0a1b2c3d"
export function whereText(backend: string, w: CellWhere): string {
  const detail = findBackend(backend)?.where.text(w) ?? "";
  return `on ${backend}${w.host ? ` at ${w.host}` : ""}${w.namespace ? ` in namespace ${w.namespace}` : ""}${detail ? `: ${detail}` : ""}`;
}
