// Convert the legacy fallback-portfolios.yaml (agents:/role_classes: with primary: and fallbacks:)
// into Portfolio documents that resolve the same way: agent first, then the task class, then the
// legacy hard-coded default (gemini-1.5-flash) unless the file names a default of its own.
import { parse, stringify } from "yaml";
import { LazarusError } from "../util/errors.js";
import { trimDashes } from "../util/text.js";

interface LegacyModel {
  model: string;
  provider?: string;
  [k: string]: unknown;
}
interface LegacyEntry {
  primary: LegacyModel;
  fallbacks?: LegacyModel[];
}
interface LegacyFile {
  agents?: Record<string, LegacyEntry>;
  role_classes?: Record<string, LegacyEntry>;
  default?: LegacyEntry;
}

export const LEGACY_DEFAULT_MODEL = "gemini-1.5-flash";

function label(text: string): string {
  return trimDashes(text.toLowerCase().replace(/[^a-z0-9-]+/g, "-")).slice(0, 63) || "x";
}

function models(e: LegacyEntry, where: string): { model: string; provider: string }[] {
  if (!e || typeof e !== "object" || !e.primary?.model)
    throw new LazarusError("LEGACY_FORMAT", `${where}: expected primary: {model: ...}`);
  return [e.primary, ...(e.fallbacks ?? [])].slice(0, 8).map((m, i) => {
    if (!m?.model) throw new LazarusError("LEGACY_FORMAT", `${where}: model ${i} has no model name`);
    return { model: String(m.model), provider: String(m.provider ?? "unknown") };
  });
}

function doc(
  name: string,
  appliesTo: Record<string, string[]> | undefined,
  ms: { model: string; provider: string }[],
): Record<string, unknown> {
  return {
    apiVersion: "lazarus/v1",
    kind: "Portfolio",
    metadata: { name },
    spec: { ...(appliesTo ? { appliesTo } : {}), models: ms },
  };
}

// The YAML text of portfolios/ documents equivalent to the legacy file's text.
export function importLegacy(text: string): { yaml: string; names: string[] } {
  let legacy: LegacyFile;
  try {
    legacy = (parse(text) ?? {}) as LegacyFile;
  } catch (err) {
    throw new LazarusError("LEGACY_FORMAT", `not valid YAML: ${err instanceof Error ? err.message : String(err)}`);
  }
  const docs: Record<string, unknown>[] = [];
  for (const [agent, e] of Object.entries(legacy.agents ?? {}))
    docs.push(doc(`agent-${label(agent)}`, { agents: [agent] }, models(e, `agents.${agent}`)));
  for (const [cls, e] of Object.entries(legacy.role_classes ?? {}))
    docs.push(doc(`class-${label(cls)}`, { taskClasses: [cls] }, models(e, `role_classes.${cls}`)));
  docs.push(
    doc(
      "default",
      undefined,
      legacy.default ? models(legacy.default, "default") : [{ model: LEGACY_DEFAULT_MODEL, provider: "google" }],
    ),
  );
  const header = "# Imported from a legacy fallback-portfolios.yaml by `lazarus portfolio import`.\n";
  return {
    yaml: header + docs.map((d) => stringify(d)).join("---\n"),
    names: docs.map((d) => (d.metadata as { name: string }).name),
  };
}
