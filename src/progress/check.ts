// spec.progress at load: a cell whose backend cannot show Lazarus its evidence of progress (its
// project/ and shared/ are not on this host) would be stalled every slice, so declaring it there
// is an error at its line. Decided by the backend's capability, never by its name (pure).
import type { Diagnostic } from "../config/diagnostics.js";
import type { DesiredCell } from "../config/types.js";
import type { At } from "../backends/contract.js";
import { REGISTRY, findBackend } from "../backends/table.js";

// Whether Lazarus can read this backend's cells' evidence of progress.
export const showsProgress = (backend: string): boolean => findBackend(backend)?.capabilities.progress ?? false;

// The backends that can, for a message.
const progressBackends = (): string[] => REGISTRY.filter((b) => b.capabilities.progress).map((b) => b.name);

// An error at spec.progress when the cell's backend cannot show progress; nothing otherwise (an
// unknown backend is reported at spec.backend).
export function progressDiagnostics(cell: DesiredCell, at: At): Diagnostic[] {
  if (!cell.progress || !findBackend(cell.backend) || showsProgress(cell.backend)) return [];
  return [
    {
      severity: "error",
      ...at(["spec", "progress"]),
      field: "spec.progress",
      message: `spec.progress needs backend ${progressBackends().join(", ")}: backend ${cell.backend} keeps the cell's project/ and shared/ where Lazarus cannot read its evidence of progress, so the cell would be stalled every slice`,
      hint: "remove spec.progress, or use a backend whose cells live on this host",
    },
  ];
}
