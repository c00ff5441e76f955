// Loading portfolios/*.yaml: shape, special chains, and the rule that no agent or task class is
// claimed twice.
import { hasErrors, type Diagnostic } from "../config/diagnostics.js";
import { parseDocs, type At } from "../config/documents.js";
import { parseDuration } from "../config/durations.js";
import { validatePortfolioShape } from "../config/schema.js";
import { configFiles } from "../config/files.js";
import { readSource } from "../config/source.js";
import { ERROR_CLASSES, type ErrorClass, type ModelSpec, type Portfolio } from "./types.js";

export interface PortfolioFileResult {
  file: string;
  portfolios: Portfolio[];
  diagnostics: Diagnostic[];
}

// Parse and validate one portfolios/ file. Pure: no I/O.
export function loadPortfolioText(file: string, text: string): PortfolioFileResult {
  const { docs, diagnostics } = parseDocs(file, text, validatePortfolioShape, "portfolio.schema.json");
  const portfolios: Portfolio[] = [];
  for (const { value, at } of docs) {
    const p = toPortfolio(value as RawPortfolio, at);
    const names = new Set(p.models.map((m) => m.model));
    for (const key of ["contextWindowFallbacks", "contentPolicyFallbacks"] as const) {
      (p[key] ?? []).forEach((m, i) => {
        if (!names.has(m))
          diagnostics.push({
            severity: "error",
            ...at(["spec", key, i]),
            field: `spec.${key}[${i}]`,
            message: `model "${m}" is not in spec.models`,
            hint: "name a model listed in spec.models",
          });
      });
    }
    portfolios.push(p);
  }
  // As in cells.d/: a file that declares nothing (emptied, comments only) holds what it declared
  // before. Portfolios are held together, so every agent keeps the models it runs with.
  if (portfolios.length === 0 && !hasErrors(diagnostics)) {
    diagnostics.push({
      severity: "warning",
      file,
      line: 1,
      col: 1,
      message:
        "this file declares no portfolios; every portfolio is held as it is (agents keep the models they run with)",
      hint: "delete the file to drop the portfolios it declared",
    });
  }
  return { file, portfolios, diagnostics };
}

interface RawPortfolio {
  metadata: { name: string };
  spec: {
    appliesTo?: { agents?: string[]; taskClasses?: string[] };
    models: ModelSpec[];
    retries?: { attempts?: number; backoff?: string; maxRetryAfter?: string };
    cooldown?: { allowedFails?: number; window?: string; duration?: string };
    fallbackOn?: ErrorClass[];
    contextWindowFallbacks?: string[];
    contentPolicyFallbacks?: string[];
  };
}

function toPortfolio(raw: RawPortfolio, at: At): Portfolio {
  const s = raw.spec;
  const d = (text: string | undefined, dflt: string): number => parseDuration(text ?? dflt) ?? 0;
  return {
    name: raw.metadata.name,
    appliesTo: { agents: [...(s.appliesTo?.agents ?? [])], taskClasses: [...(s.appliesTo?.taskClasses ?? [])] },
    models: s.models.map((m) => ({ ...m })),
    retries: {
      attempts: s.retries?.attempts ?? 2,
      backoffMs: d(s.retries?.backoff, "2s"),
      maxRetryAfterMs: d(s.retries?.maxRetryAfter, "60s"),
    },
    cooldown: {
      allowedFails: s.cooldown?.allowedFails ?? 3,
      windowMs: d(s.cooldown?.window, "60s"),
      durationMs: d(s.cooldown?.duration, "5m"),
    },
    fallbackOn: [...(s.fallbackOn ?? ERROR_CLASSES)],
    ...(s.contextWindowFallbacks ? { contextWindowFallbacks: [...s.contextWindowFallbacks] } : {}),
    ...(s.contentPolicyFallbacks ? { contentPolicyFallbacks: [...s.contentPolicyFallbacks] } : {}),
    source: at(["metadata", "name"]),
  };
}

// Portfolio names are unique, and no agent or task class is claimed by two portfolios.
// Returns undefined when that is not so (the errors are in diagnostics).
export function combinePortfolios(
  results: PortfolioFileResult[],
  diagnostics: Diagnostic[],
): Map<string, Portfolio> | undefined {
  const byName = new Map<string, Portfolio>();
  const claims = new Map<string, Portfolio>();
  let ok = true;
  const clash = (p: Portfolio, other: Portfolio, what: string): void => {
    ok = false;
    for (const [a, b] of [
      [p, other],
      [other, p],
    ] as const) {
      diagnostics.push({
        severity: "error",
        ...a.source,
        field: "metadata.name",
        message: `${what} is also claimed by portfolio "${b.name}" at ${b.source.file}:${b.source.line}`,
        hint: "let exactly one portfolio claim it",
      });
    }
  };
  for (const p of results.flatMap((r) => r.portfolios)) {
    const prev = byName.get(p.name);
    if (prev) clash(p, prev, `portfolio name "${p.name}"`);
    byName.set(p.name, p);
    for (const a of p.appliesTo.agents) {
      const c = claims.get(`agent:${a}`);
      if (c && c !== p) clash(p, c, `agent ${a}`);
      claims.set(`agent:${a}`, p);
    }
    for (const t of p.appliesTo.taskClasses) {
      const c = claims.get(`class:${t}`);
      if (c && c !== p) clash(p, c, `task class ${t}`);
      claims.set(`class:${t}`, p);
    }
  }
  return ok ? byName : undefined;
}

// Read every portfolios/*.yaml under configDir (none when the directory does not exist). A file
// that cannot be read, or a portfolios/ that cannot be listed, is a result with an error.
export async function loadPortfolioFiles(configDir: string): Promise<PortfolioFileResult[]> {
  const { files, problem } = await configFiles(configDir, "portfolios");
  const results = await Promise.all(files.map((rel) => loadPortfolioFile(configDir, rel)));
  return [
    ...(problem ? [{ file: "portfolios", portfolios: [], diagnostics: [problem] }] : []),
    ...results.filter((r) => r !== undefined),
  ];
}

// One portfolios/ file read and loaded; undefined when it is gone.
export async function loadPortfolioFile(configDir: string, rel: string): Promise<PortfolioFileResult | undefined> {
  const src = await readSource(configDir, rel);
  if (src.kind === "missing") return undefined;
  if (src.kind === "problem") return { file: rel, portfolios: [], diagnostics: [src.diagnostic] };
  return loadPortfolioText(rel, src.text);
}
