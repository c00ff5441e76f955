// What a backend says of a cell declaration on this host, as diagnostics at the cell's lines:
// a sandbox cell on a host that cannot sandbox is an error (the cell is held, never half-built).
import type { Diagnostic } from "../config/diagnostics.js";
import type { DesiredCell, SourcePos } from "../config/types.js";
import { missingFacilities } from "./sandbox/cgroup.js";
import { sandboxHost } from "./sandbox/host.js";
import { containerEngine, hasImage } from "./container/engine.js";
import { remoteDiagnostics } from "./remote/hosts.js";

// A container cell needs an engine that answers and its image present locally (never pulled).
function containerDiagnostics(cell: DesiredCell, at: (p: (string | number)[]) => SourcePos): Diagnostic[] {
  const engine = containerEngine();
  const out: Diagnostic[] = [];
  for (const problem of engine.problems) {
    out.push({ severity: "error", ...at(["spec", "backend"]), field: "spec.backend", message: `backend container cannot run on this host: ${problem}`, hint: "install and configure podman (or docker) as docs/backends.md says, or use backend: sandbox" });
  }
  if (engine.problems.length === 0 && cell.container && !hasImage(engine, cell.container.image)) {
    out.push({ severity: "error", ...at(["spec", "container", "image"]), field: "spec.container.image", message: `image ${cell.container.image} is not present in ${engine.kind}`, hint: `build or load it first (${engine.kind} images); Lazarus never pulls` });
  }
  return out;
}

export function backendDiagnostics(cell: DesiredCell, at: (p: (string | number)[]) => SourcePos): Diagnostic[] {
  if (cell.backend === "container") return containerDiagnostics(cell, at);
  if (cell.backend === "remote") return remoteDiagnostics(cell, at);
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
