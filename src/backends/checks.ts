// What a backend says of a cell declaration on this host, as diagnostics at the cell's lines:
// a sandbox cell on a host that cannot sandbox is an error (the cell is held, never half-built).
import type { Diagnostic } from "../config/diagnostics.js";
import type { DesiredCell, SourcePos } from "../config/types.js";
import { missingFacilities } from "./sandbox/cgroup.js";
import { sandboxHost } from "./sandbox/host.js";

export function backendDiagnostics(cell: DesiredCell, at: (p: (string | number)[]) => SourcePos): Diagnostic[] {
  if (cell.backend !== "sandbox") return [];
  const out: Diagnostic[] = [];
  const host = sandboxHost();
  for (const problem of host.problems) {
    out.push({ severity: "error", ...at(["spec", "backend"]), field: "spec.backend", message: `backend sandbox cannot run on this host: ${problem}`, hint: "fix the host as said, or use backend: process for trusted agents only" });
  }
  if (host.problems.length === 0) {
    const wanted = [cell.resources, ...cell.members.map((m) => m.resources)];
    const missing = new Set(wanted.flatMap((r) => missingFacilities(host.cgroups, r)));
    for (const m of missing) out.push({ severity: "error", ...at(["spec", "resources"]), field: "spec.resources", message: `a declared limit cannot be enforced: ${m}`, hint: "mount that cgroup controller, or remove the limit" });
  }
  return out;
}
