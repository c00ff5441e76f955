// What a backend says of a cell declaration on this host, as diagnostics at the cell's lines:
// a sandbox cell on a host that cannot sandbox is an error (the cell is held, never half-built).
import type { Diagnostic } from "../config/diagnostics.js";
import type { DesiredCell, SourcePos } from "../config/types.js";
import { missingFacilities } from "./sandbox/cgroup.js";
import { sandboxHost } from "./sandbox/host.js";
import { containerEngine, hasImage } from "./container/engine.js";
import { remoteDiagnostics } from "./remote/hosts.js";
import { containerUserDiagnostics } from "./container/user.js";

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

// The operator's bound on backends (LAZARUS_BACKENDS, e.g. sandbox,container; unset: every one).
// Whoever commits to cells.d/ is not trusted, and backend: process runs their command as
// Lazarus's own user; a host that takes cells from others lists the backends that contain them.
export function allowedBackendDiagnostics(cell: DesiredCell, at: (p: (string | number)[]) => SourcePos, env: NodeJS.ProcessEnv = process.env): Diagnostic[] {
  const text = env.LAZARUS_BACKENDS;
  if (text === undefined || text.trim() === "") return [];
  const allowed = text.split(",").map((b) => b.trim()).filter(Boolean);
  if (allowed.includes(cell.backend)) return [];
  return [{ severity: "error", ...at(["spec", "backend"]), field: "spec.backend", message: `backend ${cell.backend} is not allowed on this host (LAZARUS_BACKENDS=${text})`, hint: `use backend: ${allowed.join(" or ")}; the operator chooses the backends with LAZARUS_BACKENDS` }];
}

// network: host is the committer's opt-in into the host's network (its loopback services, a
// cloud's metadata address); LAZARUS_HOST_NETWORK=deny takes it away from them.
export function hostNetworkDiagnostics(cell: DesiredCell, at: (p: (string | number)[]) => SourcePos, env: NodeJS.ProcessEnv = process.env): Diagnostic[] {
  if (cell.network !== "host" || env.LAZARUS_HOST_NETWORK !== "deny") return [];
  return [{ severity: "error", ...at(["spec", "network"]), field: "spec.network", message: "network: host is not allowed on this host (LAZARUS_HOST_NETWORK=deny)", hint: "remove network (the default none gives the cell only its own loopback)" }];
}

// Limits a backend cannot enforce (process, remote: the members run as plain processes there)
// are said once, at spec.resources, rather than silently ignored.
function unenforcedLimits(cell: DesiredCell, at: (p: (string | number)[]) => SourcePos): Diagnostic[] {
  const asked = [cell.resources, ...cell.members.map((m) => m.resources)].some((r) => Object.keys(r).length > 0);
  if (!asked) return [];
  return [{ severity: "warning", ...at(["spec", "resources"]), field: "spec.resources", message: `backend ${cell.backend} enforces no resource limit: these limits are not applied`, hint: "use backend: sandbox or container to enforce them, or remove them" }];
}

export function backendDiagnostics(cell: DesiredCell, at: (p: (string | number)[]) => SourcePos): Diagnostic[] {
  const refused = [...allowedBackendDiagnostics(cell, at), ...hostNetworkDiagnostics(cell, at)];
  if (refused.length) return refused;
  if (cell.backend === "process") return unenforcedLimits(cell, at);
  if (cell.backend === "container") return [...containerUserDiagnostics(cell, at), ...containerDiagnostics(cell, at)];
  if (cell.backend === "remote") return [...remoteDiagnostics(cell, at), ...unenforcedLimits(cell, at)];
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
