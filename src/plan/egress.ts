// What plan says of a cell's egress list (pure): the hosts it may reach, which of them were added
// automatically and why, and what changed since the list in force.
import type { CellRecord } from "../cells/record.js";
import type { DesiredCell } from "../config/types.js";
import { egressList, entryText } from "../egress/allow.js";
import { canonicalJson } from "../config/digest.js";

// ", network egress (api.x.org, forge.org; automatic: api.anthropic.com for provider anthropic)"
export function egressSummary(d: DesiredCell): string {
  if (!d.egress) return "";
  const own = d.egress.entries.map(entryText);
  const auto = d.egress.auto.map((a) => `${entryText(a.entry)} for ${a.why}`);
  const parts = [
    own.length ? own.join(", ") : "nothing declared",
    ...(auto.length ? [`automatic: ${auto.join(", ")}`] : []),
  ];
  return ` (${parts.join("; ")})`;
}

// Whether the list in force differs from the one recorded.
export function egressChanged(d: DesiredCell, rec: CellRecord): boolean {
  if (d.network !== "egress" || (rec.network ?? "none") !== "egress" || !d.egress) return false;
  return canonicalJson(egressList(d.egress)) !== canonicalJson(rec.egress ?? []);
}

// "egress list + a.org, - b.org (new connections; members keep running)"
export function egressReason(d: DesiredCell, rec: CellRecord): string {
  const now = d.egress ? egressList(d.egress).map(entryText) : [];
  const was = (rec.egress ?? []).map(entryText);
  const diff = [
    ...now.filter((e) => !was.includes(e)).map((e) => `+ ${e}`),
    ...was.filter((e) => !now.includes(e)).map((e) => `- ${e}`),
  ];
  return `egress list ${diff.join(", ")} (applies to new connections; members keep running)`;
}
