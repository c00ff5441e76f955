// Whether and where a cell's declared push goes (pure): what plan says of it without loading the
// pushes themselves (git, the outbox, the forge client), which only publish and the daemon run.
import type { CellRecord } from "../cells/record.js";
import { findBackend } from "../backends/table.js";
import { pushTargetOf, type Forge, type PushTarget } from "./table.js";

// Whether the cell pushes at all: declared, and its backend's project/ is on this host.
export function pushOf(
  rec: Pick<CellRecord, "push" | "backend" | "project">,
  forges: Forge[],
): { branch: string; target: PushTarget } | undefined {
  if (!rec.push) return undefined;
  const backend = findBackend(rec.backend);
  if (!backend?.capabilities.projectHere)
    return {
      branch: rec.push.branch,
      target: { pushes: false, why: `not pushed: backend ${rec.backend} keeps project/ off this host` },
    };
  return { branch: rec.push.branch, target: pushTargetOf(forges, rec.project, rec.push.branch) };
}

// What plan and publish --dry-run say of a cell's push, or undefined when it declares none.
export function pushWords(rec: Pick<CellRecord, "push" | "backend" | "project">, forges: Forge[]): string | undefined {
  const p = pushOf(rec, forges);
  if (!p) return undefined;
  return p.target.pushes
    ? `pushes ${p.branch} to ${p.target.url} at each checkpoint and at close (never forced)`
    : `${p.branch} ${p.target.why}`;
}
