// The desired-state difference between two revisions, cell by cell and field by field, without
// looking at the running cells. Pure over two Desired values.
import { canonicalJson } from "../config/digest.js";
import { formatDuration } from "../config/durations.js";
import type { Desired, DesiredCell } from "../config/types.js";

export interface FieldChange {
  field: string;
  before: string;
  after: string;
}

export interface EntryDiff {
  kind: "cell" | "portfolio";
  name: string;
  change: "added" | "removed" | "changed";
  fields: FieldChange[];
}

function plain(c: DesiredCell): unknown {
  const { source: _s, members, ...rest } = c;
  return {
    ...rest,
    members: Object.fromEntries(members.map(({ source: _m, resolvedPortfolio: _p, ...m }) => [m.identity, m])),
  };
}

function flatten(v: unknown, prefix: string, out: Map<string, string>): void {
  if (v && typeof v === "object" && !Array.isArray(v)) {
    const entries = Object.entries(v as Record<string, unknown>);
    if (entries.length === 0) out.set(prefix, "{}");
    for (const [k, x] of entries) flatten(x, prefix ? `${prefix}.${k}` : k, out);
    return;
  }
  const key = prefix;
  if (typeof v === "number" && /Ms$/.test(key)) out.set(key.replace(/Ms$/, ""), formatDuration(v));
  else out.set(key, typeof v === "string" ? v : canonicalJson(v));
}

function fieldDiff(a: unknown, b: unknown): FieldChange[] {
  const fa = new Map<string, string>();
  const fb = new Map<string, string>();
  flatten(a, "", fa);
  flatten(b, "", fb);
  const keys = [...new Set([...fa.keys(), ...fb.keys()])].sort();
  const out: FieldChange[] = [];
  for (const k of keys) {
    const before = fa.get(k) ?? "(unset)";
    const after = fb.get(k) ?? "(unset)";
    if (before === after) continue;
    // Credentials never show their sources or values in a diff.
    if (k.startsWith("credentials."))
      out.push({ field: k.split(".").slice(0, 2).join("."), before: "(redacted)", after: "changed (redacted)" });
    else out.push({ field: k, before, after });
  }
  return out.filter((c, i, all) => all.findIndex((x) => x.field === c.field) === i);
}

export function diffDesired(base: Desired, head: Desired): EntryDiff[] {
  const out: EntryDiff[] = [];
  const compare = <T>(kind: EntryDiff["kind"], a: Map<string, T>, b: Map<string, T>, view: (x: T) => unknown): void => {
    for (const name of [...new Set([...a.keys(), ...b.keys()])].sort()) {
      const x = a.get(name);
      const y = b.get(name);
      if (x === undefined) out.push({ kind, name, change: "added", fields: fieldDiff({}, view(y as T)) });
      else if (y === undefined) out.push({ kind, name, change: "removed", fields: [] });
      else {
        const fields = fieldDiff(view(x), view(y));
        if (fields.length > 0) out.push({ kind, name, change: "changed", fields });
      }
    }
  };
  compare("cell", base.cells, head.cells, plain);
  compare("portfolio", base.portfolios, head.portfolios, ({ source: _s, ...p }) => p);
  return out;
}

export function renderDiff(diffs: EntryDiff[]): string {
  if (diffs.length === 0) return "No differences in desired state.";
  const lines: string[] = [];
  for (const d of diffs) {
    const sym = d.change === "added" ? "+" : d.change === "removed" ? "-" : "~";
    lines.push(`${sym} ${d.kind} ${d.name} (${d.change})`);
    if (d.change === "changed") for (const f of d.fields) lines.push(`    ${f.field}: ${f.before} → ${f.after}`);
  }
  return lines.join("\n");
}
