// Limits a backend cannot enforce (its members run as plain processes) are said once, at
// spec.resources, rather than silently ignored. Pure.
import type { Diagnostic } from "../config/diagnostics.js";
import type { DesiredCell } from "../config/types.js";
import type { At } from "./contract.js";

export function unenforcedLimits(cell: DesiredCell, at: At): Diagnostic[] {
  const asked = [cell.resources, ...cell.members.map((m) => m.resources)].some((r) => Object.keys(r).length > 0);
  if (!asked) return [];
  return [
    {
      severity: "warning",
      ...at(["spec", "resources"]),
      field: "spec.resources",
      message: `backend ${cell.backend} enforces no resource limit: these limits are not applied`,
      hint: "use backend: sandbox or container to enforce them, or remove them",
    },
  ];
}
