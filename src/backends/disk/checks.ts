// spec.resources.disk: the ceiling (LAZARUS_MAX_DISK) an error at the line, a quota the backend
// cannot enforce said so (pure, at load); then, in the host step, the host's default filled in
// and a quota this host cannot enforce an error.
import type { Diagnostic } from "../../config/diagnostics.js";
import { formatBytes, parseMemory } from "../../config/quantity.js";
import type { DesiredCell } from "../../config/types.js";
import { MIN_DISK, diskSettings } from "../../host/settings.js";
import type { At } from "../contract.js";
import { findBackend } from "../table.js";

const FIELD = "spec.resources.disk";
const enforcedFor = (cell: DesiredCell): boolean => findBackend(cell.backend)?.capabilities.diskQuota ?? false;

// Sets cell.disk when one is declared and returns what is wrong with it. declared: spec.resources.disk as written.
export function diskDiagnostics(
  cell: DesiredCell,
  declared: string | undefined,
  at: At,
  env: NodeJS.ProcessEnv = process.env,
): Diagnostic[] {
  if (declared === undefined) return [];
  const where = at(["spec", "resources", "disk"]);
  const enforced = enforcedFor(cell);
  const settings = diskSettings(env);
  const bytes = parseMemory(declared) ?? 0;
  cell.disk = { bytes, declared: true, enforced, at: where };
  const err = (message: string, hint: string): Diagnostic => ({
    severity: "error",
    ...where,
    field: FIELD,
    message,
    hint,
  });
  if (bytes < MIN_DISK)
    return [err(`disk ${declared} is smaller than the 16Mi minimum`, "set it to 16Mi or more, e.g. 1Gi")];
  if (settings.max !== undefined && bytes > settings.max)
    return [
      err(
        `disk ${declared} is above this host's ceiling of ${formatBytes(settings.max)} (LAZARUS_MAX_DISK)`,
        `ask for ${formatBytes(settings.max)} or less; the operator sets the ceiling with LAZARUS_MAX_DISK`,
      ),
    ];
  if (!enforced)
    return [
      {
        severity: "warning",
        ...where,
        field: FIELD,
        message: `backend ${cell.backend} cannot enforce a disk quota: its members can fill the filesystem they write to`,
        hint: "use backend: sandbox or container for a quota, or remove disk",
      },
    ];
  return [];
}

// The host step: a declared quota this host cannot enforce is an error; without one, the host's
// default (LAZARUS_DEFAULT_DISK) is filled in where the backend and this host can enforce it.
// (What the host can enforce, host.ts, is loaded by the first cell that asks.)
export async function diskHostDiagnostics(
  cell: DesiredCell,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Diagnostic[]> {
  if (!enforcedFor(cell)) return [];
  const settings = diskSettings(env);
  const d = cell.disk;
  const diskHost = async (): Promise<ReturnType<typeof import("./host.js").diskHost>> =>
    (await import("./host.js")).diskHost();
  if (d === undefined) {
    if (settings.default !== undefined && (await diskHost()).problems.length === 0)
      cell.disk = { bytes: settings.default, declared: false, enforced: true, at: cell.source };
    return [];
  }
  if (!d.declared || d.bytes < MIN_DISK || (settings.max !== undefined && d.bytes > settings.max)) return [];
  const problems = (await diskHost()).problems;
  if (problems.length === 0) return [];
  return [
    {
      severity: "error",
      ...d.at,
      field: FIELD,
      message: `a disk quota cannot be enforced on this host: ${problems.join("; ")}`,
      hint: "fix the host as said, or remove disk (LAZARUS_DEFAULT_DISK=none gives cells none)",
    },
  ];
}
