// load: read cells.d/*.yaml with source positions, validate, apply defaults.
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { LineCounter, parseAllDocuments, isMap, isPair, isScalar, type Document, type Node } from "yaml";
import type { ErrorObject } from "ajv";
import { CronExpressionParser } from "cron-parser";
import { parseDuration } from "./durations.js";
import type { Diagnostic } from "./diagnostics.js";
import { hasErrors } from "./diagnostics.js";
import { validateCellShape } from "./schema.js";
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

// Parse and validate one file's text. Pure: no I/O.
export function loadFileText(file: string, text: string): FileResult {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const diagnostics: Diagnostic[] = [];
  const cells: DesiredCell[] = [];
  const pos = (offset: number | undefined): { line: number; col: number } =>
    offset === undefined ? { line: 1, col: 1 } : lines.linePos(offset);

  if (!Array.isArray(docs)) return { file, cells, diagnostics }; // an empty stream
  for (const doc of docs) {
    for (const err of doc.errors) {
      const at = pos(err.pos[0]);
      diagnostics.push({
        severity: "error",
        file,
        ...at,
        message: `YAML syntax: ${err.message.split("\n")[0]}`,
        hint: "fix the YAML syntax",
      });
    }
    if (doc.errors.length > 0) continue;
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) continue; // an empty document, e.g. a trailing ---
    const shapeErrors = validateCellShape(value);
    for (const e of shapeErrors) diagnostics.push(shapeDiagnostic(file, doc, e, pos));
    if (shapeErrors.length > 0) continue;
    const at = (p: (string | number)[]): SourcePos => ({ file, ...pos(nodeAt(doc, p)?.range?.[0]) });
    const cell = toDesiredCell(value as RawCell, at);
    diagnostics.push(...checkCell(cell, at));
    cells.push(cell);
  }
  return { file, cells, diagnostics };
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
    members: { identity: string; role: Role; command?: string[]; env?: Record<string, string>; restart?: RestartPolicy; heartbeat?: string; replaces?: string }[];
  };
}

function toDesiredCell(raw: RawCell, at: (p: (string | number)[]) => SourcePos): DesiredCell {
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
        hint: "remove it or check its spelling against schemas/cell.schema.json",
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
        hint: "see schemas/cell.schema.json",
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
export function combine(results: FileResult[], texts: Map<string, string>): { desired: Desired; diagnostics: Diagnostic[] } {
  const diagnostics = results.flatMap((r) => r.diagnostics);
  const declared = new Map<string, DesiredCell[]>();
  for (const r of results) for (const c of r.cells) declared.set(c.name, [...(declared.get(c.name) ?? []), c]);
  const badFiles = new Set(results.filter((r) => hasErrors(r.diagnostics)).map((r) => r.file));
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
  const quarantined: QuarantinedFile[] = [...badFiles].sort().map((file) => ({
    file,
    names: [...new Set([...salvageNames(texts.get(file) ?? ""), ...(results.find((r) => r.file === file)?.cells.map((c) => c.name) ?? [])])].sort(),
  }));
  return { desired: { cells, quarantined, files: results.map((r) => r.file) }, diagnostics };
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
  return combine(results, texts);
}
