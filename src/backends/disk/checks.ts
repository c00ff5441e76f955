// spec.resources.disk against the host: the default filled in, the ceiling (LAZARUS_MAX_DISK) an
// error at the line, a quota the backend or the host cannot enforce said so.
import type { Diagnostic } from "../../config/diagnostics.js";
import { formatBytes, parseMemory } from "../../config/quantity.js";
import type { DesiredCell, SourcePos } from "../../config/types.js";
import { MIN_DISK, diskSettings } from "../../host/settings.js";
import { capabilities } from "../capabilities.js";
import { diskHost } from "./host.js";

// Sets cell.disk (declared, else the host's default where the backend enforces quotas) and
// returns what is wrong with it. declared: spec.resources.disk as written.
export function diskDiagnostics(cell: DesiredCell, declared: string | undefined, at: (p: (string | number)[]) => SourcePos, env: NodeJS.ProcessEnv = process.env): Diagnostic[] {
  const where = at(declared !== undefined ? ["spec", "resources", "disk"] : ["metadata", "name"]);
  const field = "spec.resources.disk";
  const enforced = capabilities(cell.backend).diskQuota;
  const host = enforced ? diskHost() : { problems: [] };
  const settings = diskSettings(env);
  if (declared === undefined) {
    if (enforced && settings.default !== undefined && host.problems.length === 0) cell.disk = { bytes: settings.default, declared: false, enforced, at: where };
    return [];
  }
  const bytes = parseMemory(declared) ?? 0;
  cell.disk = { bytes, declared: true, enforced, at: where };
  const err = (message: string, hint: string): Diagnostic => ({ severity: "error", ...where, field, message, hint });
  if (bytes < MIN_DISK) return [err(`disk ${declared} is smaller than the 16Mi minimum`, "set it to 16Mi or more, e.g. 1Gi")];
  if (settings.max !== undefined && bytes > settings.max) return [err(`disk ${declared} is above this host's ceiling of ${formatBytes(settings.max)} (LAZARUS_MAX_DISK)`, `ask for ${formatBytes(settings.max)} or less; the operator sets the ceiling with LAZARUS_MAX_DISK`)];
  if (!enforced) return [{ severity: "warning", ...where, field, message: `backend ${cell.backend} cannot enforce a disk quota: its members can fill the filesystem they write to`, hint: "use backend: sandbox or container for a quota, or remove disk" }];
  if (host.problems.length) return [err(`a disk quota cannot be enforced on this host: ${host.problems.join("; ")}`, "fix the host as said, or remove disk (LAZARUS_DEFAULT_DISK=none gives cells none)")];
  return [];
}
