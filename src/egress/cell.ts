// A cell's egress list: the entries it declares (each checked at its line against the operator's
// bound) and the ones added automatically (its members' model providers, its project's forge),
// which plan shows with where they come from.
import type { Diagnostic } from "../config/diagnostics.js";
import type { CellEgress, DesiredCell, SourcePos } from "../config/types.js";
import { entryText, parseEntry, withinBound, type BoundPattern } from "./allow.js";
import {
  WELL_KNOWN_PROVIDERS,
  forgeTable,
  projectMatches,
  providerTable,
  urlEntry,
  type ForgeRow,
  type ProviderRow,
} from "./tables.js";
import { once } from "../util/memo.js";
import { egressSettings } from "./settings.js";
import { REGISTRY, findBackend } from "../backends/table.js";

// Backends whose members get the egress list: Lazarus's proxy, or a cluster's policy (kubernetes:
// the list is rendered, see docs/kubernetes.md).
const egressBackends = (): string[] => REGISTRY.filter((b) => b.capabilities.network).map((b) => b.name);

// The declared list as entries (the invalid ones are left out; egressDiagnostics reports them).
export function declaredEgress(declared: readonly string[]): CellEgress {
  const entries = declared.flatMap((t) => {
    const p = parseEntry(t);
    return p.ok ? [p.value] : [];
  });
  return { declared: [...declared], entries, auto: [] };
}

// Each declared entry that is malformed or outside LAZARUS_EGRESS_ALLOW, at its own line (pure).
export function egressDiagnostics(
  cell: DesiredCell,
  at: (p: (string | number)[]) => SourcePos,
  env: NodeJS.ProcessEnv = process.env,
): Diagnostic[] {
  if (!cell.egress) return [];
  if (!findBackend(cell.backend)?.capabilities.network) {
    return [
      {
        severity: "error",
        ...at(["spec", "network"]),
        field: "spec.network",
        message: `network: {egress: [...]} needs backend ${egressBackends().join(", ")} (backend ${cell.backend} has no network namespace of its own to confine)`,
        hint: "use backend: sandbox, or remove network",
      },
    ];
  }
  let bound: BoundPattern[] | undefined;
  try {
    bound = egressSettings(env).bound;
  } catch (err) {
    return [
      {
        severity: "error",
        ...at(["spec", "network"]),
        field: "spec.network",
        message: (err as Error).message,
        hint: "the operator fixes the host setting",
      },
    ];
  }
  return cell.egress.declared.flatMap((text, i): Diagnostic[] => {
    const where = {
      severity: "error" as const,
      ...at(["spec", "network", "egress", i]),
      field: `spec.network.egress[${i}]`,
    };
    const p = parseEntry(text);
    if (!p.ok)
      return [
        {
          ...where,
          message: p.error,
          hint: "write a host name or *.domain, with an optional :port (443 and 80 without one)",
        },
      ];
    if (!withinBound(p.value, bound))
      return [
        {
          ...where,
          message: `${entryText(p.value)} is outside what this host allows (LAZARUS_EGRESS_ALLOW=${env.LAZARUS_EGRESS_ALLOW})`,
          hint: "remove the entry, or ask the operator to allow it",
        },
      ];
    return [];
  });
}

// The providers a cell's members' resolved portfolios name.
function providersOf(cell: DesiredCell): string[] {
  const names = new Set<string>();
  for (const m of cell.members) {
    const models = (m.resolvedPortfolio?.document as { models?: { provider?: unknown }[] } | undefined)?.models ?? [];
    for (const x of models) if (typeof x.provider === "string") names.add(x.provider);
  }
  return [...names].sort();
}

// The operator's tables the automatic entries come from.
export interface EgressTables {
  providers(): ReadonlyMap<string, ProviderRow>;
  forges(): readonly ForgeRow[];
}

// The provider and forge tables, each read at the first egress cell that needs it and then kept
// for the rest of one load, however many cell files ask (a broken table is read once too, and
// throws at each ask, so each file's egress cells are held alike).
export function egressTables(env: NodeJS.ProcessEnv = process.env): EgressTables {
  return {
    providers: once(() => new Map(providerTable(env).map((p) => [p.name, p]))),
    forges: once(() => forgeTable(env)),
  };
}

// Fill in the automatic entries of each egress cell; a provider without a known host is a warning.
// tables: one load's (egressTables), shared by all its files.
export function addAutoEgress(cells: Iterable<DesiredCell>, tables: EgressTables = egressTables()): Diagnostic[] {
  const out: Diagnostic[] = [];
  const list = [...cells].filter((c) => c.egress);
  if (list.length === 0) return out;
  const providers = tables.providers();
  const forges = tables.forges();
  for (const c of list) {
    const auto: CellEgress["auto"] = [];
    for (const name of providersOf(c)) {
      const row = providers.get(name);
      const e = row?.baseUrl
        ? urlEntry(row.baseUrl)
        : WELL_KNOWN_PROVIDERS[name]
          ? { host: WELL_KNOWN_PROVIDERS[name] as string, ports: [443] }
          : undefined;
      if (e) auto.push({ entry: e, why: `provider ${name}` });
      else
        out.push({
          severity: "warning",
          ...c.source,
          field: "spec.network.egress",
          message: `cell ${c.name}: provider ${name} of its portfolio has no known API host, so it is not added to the egress list`,
          hint: "the operator names it in LAZARUS_PROVIDERS (providers: [{name, baseUrl}])",
        });
    }
    const forge = forges.find((f) => projectMatches(f.match, c.project));
    const fe = forge ? urlEntry(forge.url) : undefined;
    if (fe) auto.push({ entry: fe, why: `forge of ${c.project.replace(/#.*$/, "")}` });
    (c.egress as CellEgress).auto = auto;
  }
  return out;
}

export { egressList, egressTexts } from "./allow.js";
