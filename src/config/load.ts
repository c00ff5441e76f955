// load: read cells.d/*.yaml with source positions, validate, apply defaults.
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { LineCounter, parseAllDocuments, isMap, isPair, isScalar, type Document, type Node } from "yaml";
import type { ErrorObject } from "ajv";
import { CronExpressionParser } from "cron-parser";
import { parseDuration } from "./durations.js";
import type { Diagnostic } from "./diagnostics.js";
import { hasErrors } from "./diagnostics.js";
import { validateCellShape, validatePortfolioShape } from "./schema.js";
import { ERROR_CLASSES, type ErrorClass, type ModelSpec, type Portfolio } from "../portfolio/types.js";
import { resolveAll } from "../portfolio/resolve.js";
import {
  LIMITS,
  type BackendName,
  type CredentialSource,
  type Desired,
  type DesiredCell,
  type DesiredMember,
  type QuarantinedFile,
  type RestartPolicy,
  type Role,
  type SourcePos,
} from "./types.js";
import { LazarusError, isErrno } from "../util/errors.js";

export interface FileResult {
  file: string;
  cells: DesiredCell[];
  diagnostics: Diagnostic[];
}

const CHECKPOINT_FILE = /^\d{8}T\d{6}(\d{3})?Z\.tar\.gz$/;

// Why a cron expression is not valid, or undefined when it is (evaluated in UTC).
export function cronProblem(expr: string): string | undefined {
  const fields = expr.trim().split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) return `it has ${fields.length} fields`;
  try {
    CronExpressionParser.parse(expr, { tz: "UTC" });
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

const RESERVED_ENV = /^(HOME|PATH|HERMES_HOME|CELL_[A-Z0-9_]*|LAZARUS_[A-Z0-9_]*|HERMES_[A-Z0-9_]*)$/;
const SUPPORTED_BACKENDS: readonly BackendName[] = ["process"];

type At = (p: (string | number)[]) => SourcePos;

// Parse every document of a file and check each against a schema; yields the valid ones with a
// way to find a path's source position. Pure: no I/O.
function parseDocs(file: string, text: string, validate: (v: unknown) => ErrorObject[], schemaName: string): { docs: { value: unknown; at: At }[]; diagnostics: Diagnostic[] } {
  const lines = new LineCounter();
  const parsed = parseAllDocuments(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const diagnostics: Diagnostic[] = [];
  const docs: { value: unknown; at: At }[] = [];
  const pos = (offset: number | undefined): { line: number; col: number } => (offset === undefined ? { line: 1, col: 1 } : lines.linePos(offset));
  if (!Array.isArray(parsed)) return { docs, diagnostics }; // an empty stream
  for (const doc of parsed) {
    for (const err of doc.errors) {
      diagnostics.push({ severity: "error", file, ...pos(err.pos[0]), message: `YAML syntax: ${err.message.split("\n")[0]}`, hint: "fix the YAML syntax" });
    }
    if (doc.errors.length > 0) continue;
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) continue; // an empty document, e.g. a trailing ---
    const shapeErrors = validate(value);
    for (const e of shapeErrors) diagnostics.push(shapeDiagnostic(file, doc, e, pos, schemaName));
    if (shapeErrors.length > 0) continue;
    docs.push({ value, at: (p) => ({ file, ...pos(nodeAt(doc, p)?.range?.[0]) }) });
  }
  return { docs, diagnostics };
}

// Parse and validate one cells.d/ file. Pure: no I/O.
export function loadFileText(file: string, text: string): FileResult {
  const { docs, diagnostics } = parseDocs(file, text, validateCellShape, "cell.schema.json");
  const cells: DesiredCell[] = [];
  for (const { value, at } of docs) {
    const cell = toDesiredCell(value as RawCell, at);
    diagnostics.push(...checkCell(cell, at));
    cells.push(cell);
  }
  return { file, cells, diagnostics };
}

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
        if (!names.has(m)) diagnostics.push({ severity: "error", ...at(["spec", key, i]), field: `spec.${key}[${i}]`, message: `model "${m}" is not in spec.models`, hint: "name a model listed in spec.models" });
      });
    }
    portfolios.push(p);
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
    retries: { attempts: s.retries?.attempts ?? 2, backoffMs: d(s.retries?.backoff, "2s"), maxRetryAfterMs: d(s.retries?.maxRetryAfter, "60s") },
    cooldown: { allowedFails: s.cooldown?.allowedFails ?? 3, windowMs: d(s.cooldown?.window, "60s"), durationMs: d(s.cooldown?.duration, "5m") },
    fallbackOn: [...(s.fallbackOn ?? ERROR_CLASSES)],
    ...(s.contextWindowFallbacks ? { contextWindowFallbacks: [...s.contextWindowFallbacks] } : {}),
    ...(s.contentPolicyFallbacks ? { contentPolicyFallbacks: [...s.contentPolicyFallbacks] } : {}),
    source: at(["metadata", "name"]),
  };
}

// The parts of a validated document we read; the schema guarantees the shape.
interface RawCell {
  metadata: { name: string; labels?: Record<string, string> };
  spec: {
    project: string;
    owner: string;
    backend?: BackendName;
    state?: "active" | "closed";
    ttl?: string;
    grace?: string;
    retention?: string;
    policy?: { allowGuests?: boolean; allowSubstitutes?: boolean };
    credentials?: Record<string, CredentialSource>;
    checkpoint?: { schedule?: string; keep?: number };
    restoreFrom?: string;
    downedTimeout?: string;
    inviteTtl?: string;
    taskClass?: string;
    members: {
      identity: string;
      role: Role;
      command?: string[];
      env?: Record<string, string>;
      restart?: RestartPolicy;
      heartbeat?: string;
      replaces?: string;
      portfolio?: string;
      taskClass?: string;
      onPortfolioChange?: "signal" | "restart" | "none";
    }[];
  };
}

function toDesiredCell(raw: RawCell, at: At): DesiredCell {
  const s = raw.spec;
  const members: DesiredMember[] = s.members.map((m, i) => ({
    identity: m.identity,
    home: m.identity.slice(m.identity.indexOf(":") + 1),
    role: m.role,
    ...(m.command ? { command: [...m.command] } : {}),
    env: { ...(m.env ?? {}) },
    restart: m.restart ?? "on-failure",
    ...(m.heartbeat ? { heartbeatMs: parseDuration(m.heartbeat) ?? 0 } : {}),
    ...(m.replaces ? { replaces: m.replaces } : {}),
    ...(m.portfolio ? { portfolio: m.portfolio } : {}),
    ...(m.taskClass ?? s.taskClass ? { taskClass: (m.taskClass ?? s.taskClass) as string } : {}),
    onPortfolioChange: m.onPortfolioChange ?? "signal",
    source: at(["spec", "members", i]),
  }));
  return {
    name: raw.metadata.name,
    labels: { ...(raw.metadata.labels ?? {}) },
    project: s.project,
    owner: s.owner,
    backend: s.backend ?? "process",
    state: s.state ?? "active",
    ttlMs: parseDuration(s.ttl ?? LIMITS.defaultTtl) ?? 0,
    graceMs: parseDuration(s.grace ?? LIMITS.defaultGrace) ?? 0,
    retentionMs: parseDuration(s.retention ?? LIMITS.defaultRetention) ?? 0,
    policy: { allowGuests: s.policy?.allowGuests ?? false, allowSubstitutes: s.policy?.allowSubstitutes ?? false },
    credentials: { ...(s.credentials ?? {}) },
    ...(s.taskClass ? { taskClass: s.taskClass } : {}),
    checkpoint: { ...(s.checkpoint?.schedule ? { schedule: s.checkpoint.schedule } : {}), keep: s.checkpoint?.keep ?? LIMITS.defaultKeep },
    ...(s.restoreFrom ? { restoreFrom: s.restoreFrom } : {}),
    downedTimeoutMs: parseDuration(s.downedTimeout ?? LIMITS.defaultDownedTimeout) ?? 0,
    inviteTtlMs: parseDuration(s.inviteTtl ?? LIMITS.defaultInviteTtl) ?? 0,
    members,
    source: at(["metadata", "name"]),
  };
}

// Rules beyond the shape that concern one cell.
function checkCell(cell: DesiredCell, at: (p: (string | number)[]) => SourcePos): Diagnostic[] {
  const out: Diagnostic[] = [];
  const err = (p: (string | number)[], field: string, message: string, hint: string): void => {
    const { file, line, col } = at(p);
    out.push({ severity: "error", file, line, col, field, message, hint });
  };
  if (!SUPPORTED_BACKENDS.includes(cell.backend)) {
    err(["spec", "backend"], "spec.backend", `backend "${cell.backend}" is not supported yet`, "use backend: process");
  }
  if (cell.ttlMs > LIMITS.maxTtlMs) err(["spec", "ttl"], "spec.ttl", "ttl exceeds the 24h maximum", "set ttl to 24h or less");
  if (cell.ttlMs === 0) err(["spec", "ttl"], "spec.ttl", "ttl must be longer than 0s", "set a ttl such as 4h");
  if (cell.inviteTtlMs > LIMITS.maxInviteTtlMs) err(["spec", "inviteTtl"], "spec.inviteTtl", "inviteTtl exceeds the 15m maximum", "set inviteTtl to 15m or less");
  if (cell.inviteTtlMs === 0) err(["spec", "inviteTtl"], "spec.inviteTtl", "inviteTtl must be longer than 0s", "set an inviteTtl such as 15m");
  if (cell.checkpoint.schedule !== undefined) {
    const problem = cronProblem(cell.checkpoint.schedule);
    if (problem) err(["spec", "checkpoint", "schedule"], "spec.checkpoint.schedule", `"${cell.checkpoint.schedule}" is not a valid cron expression: ${problem}`, 'use five fields, e.g. "0 * * * *" for hourly (UTC)');
  }
  if (cell.restoreFrom !== undefined && cell.restoreFrom !== "last" && !CHECKPOINT_FILE.test(cell.restoreFrom)) {
    err(["spec", "restoreFrom"], "spec.restoreFrom", `"${cell.restoreFrom}" is not a checkpoint file name`, 'use "last" or a name such as 20261125T120000Z.tar.gz');
  }
  if (cell.retentionMs === 0) err(["spec", "retention"], "spec.retention", "retention must be longer than 0s", "set a retention such as 30d");
  const identities = new Map<string, number>();
  const homes = new Map<string, number>();
  cell.members.forEach((m, i) => {
    const field = `spec.members[${i}]`;
    const prevId = identities.get(m.identity);
    if (prevId !== undefined) {
      err(["spec", "members", i, "identity"], `${field}.identity`, `identity ${m.identity} is already declared by spec.members[${prevId}]`, "declare each member once");
    } else {
      identities.set(m.identity, i);
      const prevHome = homes.get(m.home.toLowerCase());
      if (prevHome !== undefined) {
        err(["spec", "members", i, "identity"], `${field}.identity`, `home name "${m.home}" is already used by spec.members[${prevHome}]`, "give each member a distinct name after the colon");
      } else homes.set(m.home.toLowerCase(), i);
    }
    if (m.role === "guest" && !cell.policy.allowGuests) {
      err(["spec", "members", i, "role"], `${field}.role`, "role guest requires spec.policy.allowGuests: true", "enable guests in the policy or choose another role");
    }
    if (m.role === "substitute" && !cell.policy.allowSubstitutes) {
      err(["spec", "members", i, "role"], `${field}.role`, "role substitute requires spec.policy.allowSubstitutes: true", "enable substitutes in the policy or choose another role");
    }
    if (m.role === "substitute") {
      const target = m.replaces ? cell.members.find((o) => o.identity === m.replaces) : undefined;
      if (!m.replaces) err(["spec", "members", i], `${field}.replaces`, "a substitute must name the member it replaces", "add replaces: <identity of a member of this cell>");
      else if (!target) err(["spec", "members", i, "replaces"], `${field}.replaces`, `${m.replaces} is not a member of this cell`, "name a member declared in spec.members");
      else if (target.role === "substitute" || !target.command) err(["spec", "members", i, "replaces"], `${field}.replaces`, `${m.replaces} cannot be replaced: only members with a command that are not substitutes can`, "name an executor with a command");
      if (!m.command) err(["spec", "members", i], `${field}.command`, "a substitute needs a command", "add the command that runs the substitute");
    } else if (m.replaces) {
      err(["spec", "members", i, "replaces"], `${field}.replaces`, "only a member with role substitute can replace another", "remove replaces, or set role: substitute");
    }
    if (m.heartbeatMs !== undefined && !m.command) err(["spec", "members", i, "heartbeat"], `${field}.heartbeat`, "heartbeat needs a member with a command", "remove heartbeat or add a command");
    for (const key of Object.keys(m.env)) {
      if (RESERVED_ENV.test(key)) {
        err(["spec", "members", i, "env", key], `${field}.env.${key}`, `${key} is set by Lazarus and cannot be overridden`, "remove it from env");
      }
    }
  });
  return out;
}

// The YAML node at a JSON path, or the deepest ancestor that exists.
function nodeAt(doc: Document, p: (string | number)[]): Node | undefined {
  for (let n = p.length; n >= 0; n--) {
    const node = doc.getIn(p.slice(0, n), true);
    if (node && typeof node === "object" && "range" in node) return node as Node;
  }
  return undefined;
}

// The key node of `key` inside the map at path p (for unknown fields).
function keyNodeAt(doc: Document, p: (string | number)[], key: string): Node | undefined {
  const parent = p.length === 0 ? doc.contents : doc.getIn(p, true);
  if (!isMap(parent)) return undefined;
  for (const item of parent.items) {
    if (isPair(item) && isScalar(item.key) && String(item.key.value) === key) return item.key;
  }
  return undefined;
}

function pointerToPath(pointer: string): (string | number)[] {
  if (!pointer) return [];
  return pointer
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function fieldName(p: (string | number)[]): string {
  return p.reduce<string>((acc, part) => (typeof part === "number" ? `${acc}[${part}]` : acc ? `${acc}.${part}` : part), "");
}

function shapeDiagnostic(
  file: string,
  doc: Document,
  e: ErrorObject,
  pos: (offset: number | undefined) => { line: number; col: number },
  schemaName: string,
): Diagnostic {
  const p = pointerToPath(e.instancePath);
  const base = { severity: "error" as const, file };
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case "additionalProperties": {
      const key = String(params.additionalProperty);
      const full = [...p, key];
      return {
        ...base,
        ...pos((keyNodeAt(doc, p, key) ?? nodeAt(doc, p))?.range?.[0]),
        field: fieldName(full),
        message: `unknown field "${key}"`,
        hint: `remove it or check its spelling against schemas/${schemaName}`,
      };
    }
    case "required": {
      const missing = String(params.missingProperty);
      return {
        ...base,
        ...pos(nodeAt(doc, p)?.range?.[0]),
        field: fieldName([...p, missing]),
        message: `missing required field "${missing}"`,
        hint: "add it",
      };
    }
    case "enum":
      return {
        ...base,
        ...pos(nodeAt(doc, p)?.range?.[0]),
        field: fieldName(p),
        message: `must be one of ${(params.allowedValues as unknown[]).join(", ")}`,
        hint: `got ${JSON.stringify(doc.getIn(p))}`,
      };
    case "const":
      return {
        ...base,
        ...pos(nodeAt(doc, p)?.range?.[0]),
        field: fieldName(p),
        message: `must be ${JSON.stringify(params.allowedValue)}`,
        hint: `got ${JSON.stringify(doc.getIn(p))}`,
      };
    case "pattern":
      return {
        ...base,
        ...pos(nodeAt(doc, p)?.range?.[0]),
        field: fieldName(p),
        message: `${JSON.stringify(doc.getIn(p))} is not valid`,
        hint: patternHint(p),
      };
    case "propertyNames":
      return { ...base, ...pos(nodeAt(doc, p)?.range?.[0]), field: fieldName(p), message: "has an invalid key", hint: "keys must look like environment variable names (A-Z, 0-9, _)" };
    default:
      return {
        ...base,
        ...pos(nodeAt(doc, p)?.range?.[0]),
        field: fieldName(p) || "(document)",
        message: e.message ?? e.keyword,
        hint: `see schemas/${schemaName}`,
      };
  }
}

function patternHint(p: (string | number)[]): string {
  const last = p[p.length - 1];
  if (last === "name") return "use a DNS label: lowercase letters, digits and '-', at most 63 characters";
  if (last === "identity" || last === "owner") return "use <agent|bot|human>:<name>, e.g. agent:allegro";
  if (last === "ttl" || last === "grace" || last === "retention") return "use a duration such as 90s, 30m, 4h, 1h30m or 30d";
  return "see schemas/cell.schema.json";
}

// Cell names a broken file still appears to declare. Over-matching only holds more cells.
export function salvageNames(text: string): string[] {
  const names = new Set<string>();
  for (const m of text.matchAll(/^\s*(?:-\s*)?name:\s*["']?([a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)["']?\s*(?:#.*)?$/gm)) {
    if (m[1]) names.add(m[1]);
  }
  return [...names].sort();
}

// Combine per-file results: cross-file rules, quarantine, and the desired state.
export function combine(results: FileResult[], texts: Map<string, string>, portfolioResults: PortfolioFileResult[] = []): { desired: Desired; diagnostics: Diagnostic[] } {
  const diagnostics = [...results.flatMap((r) => r.diagnostics), ...portfolioResults.flatMap((r) => r.diagnostics)];
  const portfolios = combinePortfolios(portfolioResults, diagnostics);
  const portfoliosHeld = portfolioResults.some((r) => hasErrors(r.diagnostics)) || portfolios === undefined;
  // A member naming a portfolio that does not exist is an error in its cell's file.
  const missingPortfolio = new Set<string>();
  if (!portfoliosHeld) {
    for (const r of results) {
      for (const c of r.cells) {
        c.members.forEach((m, i) => {
          if (m.portfolio && !portfolios.has(m.portfolio)) {
            diagnostics.push({ severity: "error", ...m.source, field: `spec.members[${i}].portfolio`, message: `portfolio "${m.portfolio}" is not declared in portfolios/`, hint: `declare it, or name one of: ${[...portfolios.keys()].join(", ") || "(none yet)"}` });
            missingPortfolio.add(r.file);
          }
        });
      }
    }
  }
  const declared = new Map<string, DesiredCell[]>();
  for (const r of results) for (const c of r.cells) declared.set(c.name, [...(declared.get(c.name) ?? []), c]);
  const badFiles = new Set([...results.filter((r) => hasErrors(r.diagnostics)).map((r) => r.file), ...missingPortfolio]);
  for (const [name, decls] of declared) {
    if (decls.length < 2) continue;
    for (const d of decls) {
      const others = decls.filter((o) => o !== d).map((o) => `${o.source.file}:${o.source.line}`);
      diagnostics.push({
        severity: "error",
        ...d.source,
        field: "metadata.name",
        message: `cell "${name}" is also declared at ${others.join(", ")}`,
        hint: "declare each cell in exactly one place",
      });
      badFiles.add(d.source.file);
    }
  }
  const cells = new Map<string, DesiredCell>();
  for (const r of results) {
    if (badFiles.has(r.file)) continue;
    for (const c of r.cells) cells.set(c.name, c);
  }
  const ports = portfolios ?? new Map<string, Portfolio>();
  resolveAll(cells.values(), ports, portfoliosHeld);
  const quarantined: QuarantinedFile[] = [...badFiles].sort().map((file) => ({
    file,
    names: [...new Set([...salvageNames(texts.get(file) ?? ""), ...(results.find((r) => r.file === file)?.cells.map((c) => c.name) ?? [])])].sort(),
  }));
  return { desired: { cells, portfolios: ports, portfoliosHeld, quarantined, files: [...results.map((r) => r.file), ...portfolioResults.map((r) => r.file)] }, diagnostics };
}

// Portfolio names are unique, and no agent or task class is claimed by two portfolios.
// Returns undefined when that is not so (the errors are in diagnostics).
function combinePortfolios(results: PortfolioFileResult[], diagnostics: Diagnostic[]): Map<string, Portfolio> | undefined {
  const byName = new Map<string, Portfolio>();
  const claims = new Map<string, Portfolio>();
  let ok = true;
  const clash = (p: Portfolio, other: Portfolio, what: string): void => {
    ok = false;
    for (const [a, b] of [[p, other], [other, p]] as const) {
      diagnostics.push({ severity: "error", ...a.source, field: "metadata.name", message: `${what} is also claimed by portfolio "${b.name}" at ${b.source.file}:${b.source.line}`, hint: "let exactly one portfolio claim it" });
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

// Read every portfolios/*.yaml under configDir (none when the directory does not exist).
export async function loadPortfolioFiles(configDir: string): Promise<PortfolioFileResult[]> {
  const dir = path.join(configDir, "portfolios");
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    if (isErrno(err, "ENOENT")) return [];
    throw err;
  }
  const files = entries.filter((f) => /\.ya?ml$/.test(f) && !f.startsWith(".")).sort();
  return Promise.all(files.map(async (f) => loadPortfolioText(`portfolios/${f}`, await readFile(path.join(dir, f), "utf8"))));
}

// Read and validate every cells.d/*.yaml under configDir.
export async function loadConfig(configDir: string): Promise<{ desired: Desired; diagnostics: Diagnostic[] }> {
  const dir = path.join(configDir, "cells.d");
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    if (isErrno(err, "ENOENT")) {
      throw new LazarusError("CONFIG_NOT_FOUND", `no cells.d/ directory in ${path.resolve(configDir)}: point --config at the directory that holds cells.d/ and portfolios/`);
    }
    throw err;
  }
  const files = entries.filter((f) => /\.ya?ml$/.test(f) && !f.startsWith(".")).sort();
  const texts = new Map<string, string>();
  const results = await Promise.all(
    files.map(async (f) => {
      const rel = `cells.d/${f}`;
      const text = await readFile(path.join(dir, f), "utf8");
      texts.set(rel, text);
      return loadFileText(rel, text);
    }),
  );
  return combine(results, texts, await loadPortfolioFiles(configDir));
}
