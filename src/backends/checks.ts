// What this host says of a cell declaration, as diagnostics at the cell's lines. The operator's
// bounds (LAZARUS_BACKENDS, LAZARUS_HOST_NETWORK) are settings, checked while loading (pure); the
// host step after loading (hostDiagnostics) asks the cell's backend about this host, and checks
// the disk quota: a cell this host cannot run is held, never half-built.
import type { Diagnostic } from "../config/diagnostics.js";
import type { DesiredCell } from "../config/types.js";
import type { At } from "./contract.js";
import { findBackend } from "./table.js";
import { diskHostDiagnostics } from "./disk/checks.js";

// The operator's bound on backends (LAZARUS_BACKENDS, e.g. sandbox,container; unset: every one).
// Whoever commits to cells.d/ is not trusted, and backend: process runs their command as
// Lazarus's own user; a host that takes cells from others lists the backends that contain them.
export function allowedBackendDiagnostics(
  cell: DesiredCell,
  at: At,
  env: NodeJS.ProcessEnv = process.env,
): Diagnostic[] {
  const text = env.LAZARUS_BACKENDS;
  if (text === undefined || text.trim() === "") return [];
  const allowed = text
    .split(",")
    .map((b) => b.trim())
    .filter(Boolean);
  if (allowed.includes(cell.backend)) return [];
  return [
    {
      severity: "error",
      ...at(["spec", "backend"]),
      field: "spec.backend",
      message: `backend ${cell.backend} is not allowed on this host (LAZARUS_BACKENDS=${text})`,
      hint: `use backend: ${allowed.join(" or ")}; the operator chooses the backends with LAZARUS_BACKENDS`,
    },
  ];
}

// network: host is the committer's opt-in into the host's network (its loopback services, a
// cloud's metadata address); LAZARUS_HOST_NETWORK=deny takes it away from them.
export function hostNetworkDiagnostics(cell: DesiredCell, at: At, env: NodeJS.ProcessEnv = process.env): Diagnostic[] {
  if (cell.network !== "host" || env.LAZARUS_HOST_NETWORK !== "deny") return [];
  return [
    {
      severity: "error",
      ...at(["spec", "network"]),
      field: "spec.network",
      message: "network: host is not allowed on this host (LAZARUS_HOST_NETWORK=deny)",
      hint: "remove network (the default none gives the cell only its own loopback)",
    },
  ];
}

// The operator's bounds on a cell (pure: settings only).
export function boundDiagnostics(cell: DesiredCell, at: At, env: NodeJS.ProcessEnv = process.env): Diagnostic[] {
  return [...allowedBackendDiagnostics(cell, at, env), ...hostNetworkDiagnostics(cell, at, env)];
}

// Whether the host step may report at a line of the cell other than its name's (then its site, and
// so its document, is kept until that step ran; a process cell's is let go at once).
export function needsSite(cell: DesiredCell): boolean {
  const spec = findBackend(cell.backend);
  return spec?.hostChecks !== undefined;
}

// The host step of one cell (after loading): its backend's checks of this host (not asked for a
// cell the operator's bounds refuse), its disk quota.
export async function hostDiagnostics(
  cell: DesiredCell,
  at: At,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Diagnostic[]> {
  const spec = findBackend(cell.backend);
  const refused = boundDiagnostics(cell, at, env).length > 0;
  const own = spec?.hostChecks && !refused ? await spec.hostChecks(cell, at) : [];
  return [...own, ...(await diskHostDiagnostics(cell, env))];
}
