// load: read cells.d/*.yaml with source positions, validate, apply defaults.
import { cronParser } from "../util/cron.js";
import { parseDuration } from "./durations.js";
import type { Diagnostic } from "./diagnostics.js";
import { hasErrors } from "./diagnostics.js";
import { validateCellShape } from "./schema.js";
import { parseDocs, type At } from "./documents.js";
import type { Portfolio } from "../portfolio/types.js";
import { resolveAll } from "../portfolio/resolve.js";
import { combinePortfolios, loadPortfolioFiles, type PortfolioFileResult } from "../portfolio/load.js";

export { loadPortfolioText, type PortfolioFileResult } from "../portfolio/load.js";
import {
  LIMITS,
  type BackendName,
  type RemoteSpec,
  type CredentialSource,
  type Desired,
  type CellBudget,
  type DesiredCell,
  type DesiredMember,
  type FileResult,
  type KubernetesSpec,
  type QuarantinedFile,
  type OnStall,
  type ProgressSpec,
  type RestartPolicy,
  type Role,
  type SourcePos,
} from "./types.js";
import { configFiles } from "./files.js";
import { checkpointSizeDiagnostics, valueDiagnostics } from "./limits.js";
import { commandLinkErrors, commandPathDiagnostics, programWarnings } from "./programs.js";
import { plainTextDiagnostics } from "./plain.js";
import { readSource } from "./source.js";
import { maxFileSize, RealDirs } from "./read.js";
import { parseMemory, toResources, type RawResources } from "./quantity.js";
import { boundDiagnostics, hostDiagnostics, needsSite } from "../backends/checks.js";
import { DEFAULT_BACKEND, REGISTRY, RETIRED, backendNames, findBackend } from "../backends/table.js";
import { errorMessage } from "../util/errors.js";
import { addAutoEgress, declaredEgress, egressDiagnostics, egressTables } from "../egress/cell.js";
import { ceilingDiagnostics } from "./ceilings.js";
import { budgetDiagnostics } from "./budget.js";
import { addGateway, gatewayTable } from "../gateway/broker.js";
import { hostLimits, type HostLimits } from "../host/limits.js";
import { diskDiagnostics } from "../backends/disk/checks.js";
import { checkFileCredentials } from "./credentials.js";
import { checkFilePython, pythonPathDiagnostics } from "../runtime/python/check.js";
import { progressDiagnostics } from "../progress/check.js";
import { checkpointMaxBytes, hostSettings } from "../host/settings.js";
import type { CredentialContext } from "../host/secrets.js";

export type { FileResult } from "./types.js";

const CHECKPOINT_FILE = /^\d{8}T\d{6}(\d{3})?Z\.tar\.(gz|zst)$/;

// Why a cron expression is not valid, or undefined when it is (evaluated in UTC).
export function cronProblem(expr: string): string | undefined {
  const fields = expr.trim().split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) return `it has ${fields.length} fields`;
  try {
    cronParser().parse(expr, { tz: "UTC" });
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

const RESERVED_ENV = /^(HOME|PATH|VIRTUAL_ENV|HERMES_HOME|CELL_[A-Z0-9_]*|LAZARUS_[A-Z0-9_]*|HERMES_[A-Z0-9_]*)$/;

// Where each cell of a file was declared, while its document is at hand: the host step after
// loading reports at the cell's lines with it. Dropped once that step ran.
export interface CellSite {
  cell: DesiredCell;
  at?: At; // kept only where the host step may need it (needsSite)
}

// What one load works out once for all its files instead of once for each: the operator's
// settings it checks against (read from Lazarus's environment; the memory ceiling's default reads
// /proc/meminfo) and the real paths of the config dir and cells.d/ (RealDirs). Each is worked out
// when the first file needs it, so a bad setting fails the load where it always did. Keep one for
// one load (one command, one refresh of the daemon's cache) only: a changed setting or directory
// is seen by the next. env: Lazarus's environment as the load began, copied once into a plain
// object: each read of process.env is a call into node's C++ (the per-cell checks read
// LAZARUS_BACKENDS and others for every cell, PATH for every file).
export class LoadScope {
  readonly dirs = new RealDirs();
  readonly env: NodeJS.ProcessEnv = { ...process.env };
  // The files the listing of cells.d/ said are regular files (read without an lstat first).
  regular: ReadonlySet<string> = new Set();
  private limitsSeen: HostLimits | undefined;
  private checkpointMax: number | undefined;
  private maxBytes: number | undefined;

  get limits(): HostLimits {
    return (this.limitsSeen ??= hostLimits(process.env));
  }

  get checkpointMaxBytes(): number {
    return (this.checkpointMax ??= checkpointMaxBytes());
  }

  get maxFileSize(): number {
    return (this.maxBytes ??= maxFileSize());
  }
}

// The checks of one cell beyond its shape, in the order their diagnostics are reported.
type CellRule = (cell: DesiredCell, at: At, scope: LoadScope, raw: RawCell) => readonly Diagnostic[];
const CELL_RULES: readonly CellRule[] = [
  (cell, at) => checkCell(cell, at),
  (cell, at) => valueDiagnostics(cell, at),
  (cell, at, scope) => ceilingDiagnostics(cell, at, scope.limits),
  (cell, at, scope) => budgetDiagnostics(cell, at, scope.limits),
  (cell, at, scope) => checkpointSizeDiagnostics(cell, at, scope.checkpointMaxBytes),
  (cell, at, scope) => boundDiagnostics(cell, at, scope.env),
  (cell, at) => egressDiagnostics(cell, at),
  (cell, at) => progressDiagnostics(cell, at),
  (cell, at, scope, raw) => diskDiagnostics(cell, raw.spec.resources?.disk, at, scope.env),
  (cell, at) => pythonPathDiagnostics(cell, at),
  (cell, at) => commandPathDiagnostics(cell, at),
  (cell, at) => plainTextDiagnostics(cell, at),
];

// Parse and validate one cells.d/ file. Pure: no I/O (this host is checked after, by checkHost).
export function loadFileText(file: string, text: string): FileResult {
  return parseCellFile(file, text).result;
}

// loadFileText, with each cell's site for the host step.
export function parseCellFile(
  file: string,
  text: string,
  scope = new LoadScope(),
): { result: FileResult; sites: CellSite[] } {
  // Each cell is built as its document is parsed; its diagnostics still come after every parse
  // and shape diagnostic of the file, as they always did.
  let cells: DesiredCell[] = [];
  let sites: CellSite[] = [];
  const checks: Diagnostic[] = [];
  void scope.limits; // worked out before the first document, so a bad setting fails every load as it did
  const parsed = parseDocs(file, text, validateCellShape, "cell.schema.json", ({ value, at }) => {
    const cell = toDesiredCell(value as RawCell, at);
    for (const rule of CELL_RULES) for (const d of rule(cell, at, scope, value as RawCell)) checks.push(d);
    cells.push(cell);
    sites.push(needsSite(cell) ? { cell, at } : { cell });
  });
  const diagnostics = parsed.diagnostics;
  if (parsed.tooDeep) {
    cells = []; // only the depth diagnostic counts
    sites = [];
  } else diagnostics.push(...checks);
  // A file that declares nothing (empty, comments, a lone ---) holds what it declared before: an
  // emptied file must never prune its cells. Only deleting the file closes them.
  if (cells.length === 0 && !hasErrors(diagnostics)) {
    diagnostics.push({
      severity: "warning",
      file,
      line: 1,
      col: 1,
      message: "this file declares no cells; the cells it declared before are held as they are",
      hint: "delete the file to close them",
    });
  }
  return { result: { file, cells, diagnostics }, sites };
}

// The host step, after loading: what this host says of each cell (its backend's tools, engine or
// hosts file, the disk quota), at the cell's lines. A cell this host cannot
// run is an error, so its file is quarantined and its cells held as they are.
// env: Lazarus's environment (by default process.env; a load passes its LoadScope's).
export async function checkHost(
  parsed: { result: FileResult; sites: CellSite[] },
  env: NodeJS.ProcessEnv = process.env,
): Promise<FileResult> {
  const found: Diagnostic[] = [];
  for (const { cell, at } of parsed.sites) found.push(...(await hostDiagnostics(cell, at ?? (() => cell.source), env)));
  if (found.length === 0) return parsed.result;
  return { ...parsed.result, diagnostics: [...parsed.result.diagnostics, ...found] };
}

// One file's text loaded and checked against this host (what validate says of it, its credentials
// and programs aside).
export function checkFileText(file: string, text: string, scope = new LoadScope()): Promise<FileResult> {
  return checkHost(parseCellFile(file, text, scope), scope.env);
}

// The parts of a validated document we read; the schema guarantees the shape.
interface RawCell {
  metadata: { name: string; labels?: Record<string, string> };
  spec: {
    project: string;
    owner: string;
    backend?: BackendName;
    network?: "none" | "host" | { egress: string[] };
    resources?: RawResources;
    container?: { image: string; user?: string; readOnlyRootfs?: boolean };
    kubernetes?: RawKubernetes;
    remote?: RemoteSpec;
    state?: "active" | "closed";
    ttl?: string;
    grace?: string;
    retention?: string;
    policy?: { allowGuests?: boolean; allowSubstitutes?: boolean };
    credentials?: Record<string, CredentialSource>;
    checkpoint?: { schedule?: string; keep?: number; compression?: "gzip" | "zstd"; maxSize?: string };
    restoreFrom?: string;
    runtime?: { python?: { requirements?: string; findLinks?: string } };
    logs?: { maxSize?: string; keep?: number };
    budget?: { tokens?: number; cost?: number; period: string };
    downedTimeout?: string;
    inviteTtl?: string;
    progress?: { slice?: string; onStall?: OnStall };
    push?: { branch: string };
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
      resources?: RawResources;
    }[];
  };
}

type RawKubernetes = Partial<Omit<KubernetesSpec, "namespace" | "image">> & { namespace: string; image: string };

// spec.kubernetes with its defaults; the kubeconfig path stays as written here (the credential
// step, config/credentials.ts, resolves it under the secrets root).
function toKubernetes(k: RawKubernetes): KubernetesSpec {
  return {
    namespace: k.namespace,
    image: k.image,
    workload: k.workload ?? "pod",
    ...(k.storageClass ? { storageClass: k.storageClass } : {}),
    storage: k.storage ?? "1Gi",
    accessMode: k.accessMode ?? "ReadWriteOnce",
    runAsUser: k.runAsUser ?? 1000,
    egress: (k.egress ?? []).map((e) => ({ cidr: e.cidr, ...(e.ports ? { ports: [...e.ports] } : {}) })),
    ...(k.kubeconfig ? { kubeconfig: k.kubeconfig } : {}),
    ...(k.context ? { context: k.context } : {}),
  };
}

function toBudget(b: NonNullable<RawCell["spec"]["budget"]>): CellBudget {
  return {
    ...(b.tokens !== undefined ? { tokens: b.tokens } : {}),
    ...(b.cost !== undefined ? { cost: b.cost } : {}),
    periodMs: parseDuration(b.period) ?? 0,
  };
}

// spec.progress with its defaults (a 10m slice, onStall notify).
const toProgress = (p: { slice?: string; onStall?: OnStall }): ProgressSpec => ({
  sliceMs: parseDuration(p.slice ?? LIMITS.defaultSlice) ?? 0,
  onStall: p.onStall ?? "notify",
});

function toLogs(l: { maxSize?: string; keep?: number }): NonNullable<DesiredCell["logs"]> {
  return {
    ...(l.maxSize !== undefined ? { maxBytes: parseMemory(l.maxSize) ?? 0 } : {}),
    ...(l.keep !== undefined ? { keep: l.keep } : {}),
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
    ...((m.taskClass ?? s.taskClass) ? { taskClass: (m.taskClass ?? s.taskClass) as string } : {}),
    onPortfolioChange: m.onPortfolioChange ?? "signal",
    resources: m.resources ? toResources(m.resources) : toResources(s.resources),
    source: at(["spec", "members", i]),
    ...(m.command?.length ? { commandSource: at(["spec", "members", i, "command", 0]) } : {}),
  }));
  return {
    name: raw.metadata.name,
    labels: { ...(raw.metadata.labels ?? {}) },
    project: s.project,
    owner: s.owner,
    backend: s.backend ?? DEFAULT_BACKEND,
    network: typeof s.network === "object" ? "egress" : (s.network ?? "none"),
    ...(typeof s.network === "object" ? { egress: declaredEgress(s.network.egress) } : {}),
    resources: toResources(s.resources),
    ...(s.container
      ? {
          container: {
            image: s.container.image,
            ...(s.container.user ? { user: s.container.user } : {}),
            readOnlyRootfs: s.container.readOnlyRootfs ?? true,
          },
        }
      : {}),
    ...(s.kubernetes ? { kubernetes: toKubernetes(s.kubernetes) } : {}),
    ...(s.remote ? { remote: { ...s.remote } } : {}),
    state: s.state ?? "active",
    ttlMs: parseDuration(s.ttl ?? LIMITS.defaultTtl) ?? 0,
    graceMs: parseDuration(s.grace ?? LIMITS.defaultGrace) ?? 0,
    retentionMs: parseDuration(s.retention ?? LIMITS.defaultRetention) ?? 0,
    policy: { allowGuests: s.policy?.allowGuests ?? false, allowSubstitutes: s.policy?.allowSubstitutes ?? false },
    credentials: { ...(s.credentials ?? {}) },
    ...(s.kubernetes?.kubeconfig ? { kubeconfigAt: at(["spec", "kubernetes", "kubeconfig"]) } : {}),
    ...(s.credentials
      ? {
          credentialsAt: Object.fromEntries(
            Object.entries(s.credentials).map(([k, v]) => [
              k,
              at(["spec", "credentials", k, "file" in v ? "file" : "env"]),
            ]),
          ),
        }
      : {}),
    ...(s.taskClass ? { taskClass: s.taskClass } : {}),
    checkpoint: {
      ...(s.checkpoint?.schedule ? { schedule: s.checkpoint.schedule } : {}),
      keep: s.checkpoint?.keep ?? LIMITS.defaultKeep,
      ...(s.checkpoint?.compression ? { compression: s.checkpoint.compression } : {}),
      ...(s.checkpoint?.maxSize !== undefined ? { maxBytes: parseMemory(s.checkpoint.maxSize) ?? 0 } : {}),
    },
    ...(s.restoreFrom ? { restoreFrom: s.restoreFrom } : {}),
    ...(s.logs ? { logs: toLogs(s.logs) } : {}),
    ...(s.runtime?.python ? { python: { ...s.runtime.python, at: at(["spec", "runtime", "python"]) } } : {}),
    ...(s.budget ? { budget: toBudget(s.budget) } : {}),
    downedTimeoutMs: parseDuration(s.downedTimeout ?? LIMITS.defaultDownedTimeout) ?? 0,
    inviteTtlMs: parseDuration(s.inviteTtl ?? LIMITS.defaultInviteTtl) ?? 0,
    ...(s.progress ? { progress: toProgress(s.progress) } : {}),
    ...(s.push ? { push: { branch: s.push.branch } } : {}),
    members,
    source: at(["metadata", "name"]),
  };
}

// Report an error at path p of the cell's document.
type Err = (p: (string | number)[], field: string, message: string, hint: string) => void;

// Rules beyond the shape that concern one cell.
function checkCell(cell: DesiredCell, at: (p: (string | number)[]) => SourcePos): Diagnostic[] {
  const out: Diagnostic[] = [];
  const err: Err = (p, field, message, hint) => {
    const { file, line, col } = at(p);
    out.push({ severity: "error", file, line, col, field, message, hint });
  };
  checkBackend(cell, at, out, err);
  checkTimes(cell, err);
  checkRestore(cell, err);
  const seen: MemberNames = { identities: new Map(), homes: new Map() };
  for (let i = 0; i < cell.members.length; i++) checkMember(cell, i, seen, err);
  return out;
}

// The cell's backend is one this build knows; it checks its own fields, and every other backend
// says what of its own the cell must not set.
function checkBackend(cell: DesiredCell, at: At, out: Diagnostic[], err: Err): void {
  const backend = findBackend(cell.backend);
  if (!backend)
    err(
      ["spec", "backend"],
      "spec.backend",
      `backend "${cell.backend}" is not supported yet`,
      RETIRED[cell.backend] ?? `use backend: ${backendNames().join(", ")}`,
    );
  else {
    const own = backend.validate?.(cell, at);
    if (own) for (const d of own) out.push(d);
  }
  for (const other of REGISTRY) {
    if (other === backend || !other.stray) continue;
    for (const d of other.stray(cell, at)) out.push(d);
  }
}

// ttl, inviteTtl and retention within their bounds.
function checkTimes(cell: DesiredCell, err: Err): void {
  if (cell.ttlMs > LIMITS.maxTtlMs)
    err(["spec", "ttl"], "spec.ttl", "ttl exceeds the 24h maximum", "set ttl to 24h or less");
  if (cell.ttlMs === 0) err(["spec", "ttl"], "spec.ttl", "ttl must be longer than 0s", "set a ttl such as 4h");
  if (cell.inviteTtlMs > LIMITS.maxInviteTtlMs)
    err(["spec", "inviteTtl"], "spec.inviteTtl", "inviteTtl exceeds the 15m maximum", "set inviteTtl to 15m or less");
  if (cell.inviteTtlMs === 0)
    err(["spec", "inviteTtl"], "spec.inviteTtl", "inviteTtl must be longer than 0s", "set an inviteTtl such as 15m");
}

// The checkpoint schedule is a cron expression, restoreFrom names a checkpoint (or "last"), and
// retention is not zero.
function checkRestore(cell: DesiredCell, err: Err): void {
  if (cell.checkpoint.schedule !== undefined) {
    const problem = cronProblem(cell.checkpoint.schedule);
    if (problem)
      err(
        ["spec", "checkpoint", "schedule"],
        "spec.checkpoint.schedule",
        `"${cell.checkpoint.schedule}" is not a valid cron expression: ${problem}`,
        'use five fields, e.g. "0 * * * *" for hourly (UTC)',
      );
  }
  if (cell.restoreFrom !== undefined && cell.restoreFrom !== "last" && !CHECKPOINT_FILE.test(cell.restoreFrom)) {
    err(
      ["spec", "restoreFrom"],
      "spec.restoreFrom",
      `"${cell.restoreFrom}" is not a checkpoint file name`,
      'use "last" or a name such as 20261125T120000Z.tar.zst',
    );
  }
  if (cell.retentionMs === 0)
    err(["spec", "retention"], "spec.retention", "retention must be longer than 0s", "set a retention such as 30d");
}

// The identities and home names of the members checked so far, with the index of each.
interface MemberNames {
  identities: Map<string, number>;
  homes: Map<string, number>;
}

// One member's rules, in the order they are reported: its names, its role, its heartbeat, its env.
function checkMember(cell: DesiredCell, i: number, seen: MemberNames, err: Err): void {
  const m = cell.members[i] as DesiredMember;
  const field = `spec.members[${i}]`;
  checkMemberNames(m, i, field, seen, err);
  checkRolePolicy(cell, m, i, field, err);
  if (m.role === "substitute") checkSubstitute(cell, m, i, field, err);
  else if (m.replaces) {
    err(
      ["spec", "members", i, "replaces"],
      `${field}.replaces`,
      "only a member with role substitute can replace another",
      "remove replaces, or set role: substitute",
    );
  }
  if (m.heartbeatMs !== undefined && !m.command)
    err(
      ["spec", "members", i, "heartbeat"],
      `${field}.heartbeat`,
      "heartbeat needs a member with a command",
      "remove heartbeat or add a command",
    );
  for (const key of Object.keys(m.env)) {
    if (RESERVED_ENV.test(key)) {
      err(
        ["spec", "members", i, "env", key],
        `${field}.env.${key}`,
        `${key} is set by Lazarus and cannot be overridden`,
        "remove it from env",
      );
    }
  }
}

// Each identity is declared once, and each home name (after the colon, any case) is one member's.
function checkMemberNames(m: DesiredMember, i: number, field: string, seen: MemberNames, err: Err): void {
  const prevId = seen.identities.get(m.identity);
  if (prevId !== undefined) {
    err(
      ["spec", "members", i, "identity"],
      `${field}.identity`,
      `identity ${m.identity} is already declared by spec.members[${prevId}]`,
      "declare each member once",
    );
    return;
  }
  seen.identities.set(m.identity, i);
  const home = m.home.toLowerCase();
  const prevHome = seen.homes.get(home);
  if (prevHome !== undefined) {
    err(
      ["spec", "members", i, "identity"],
      `${field}.identity`,
      `home name "${m.home}" is already used by spec.members[${prevHome}]`,
      "give each member a distinct name after the colon",
    );
  } else seen.homes.set(home, i);
}

// A guest or a substitute only where the cell's policy allows them.
function checkRolePolicy(cell: DesiredCell, m: DesiredMember, i: number, field: string, err: Err): void {
  if (m.role === "guest" && !cell.policy.allowGuests) {
    err(
      ["spec", "members", i, "role"],
      `${field}.role`,
      "role guest requires spec.policy.allowGuests: true",
      "enable guests in the policy or choose another role",
    );
  }
  if (m.role === "substitute" && !cell.policy.allowSubstitutes) {
    err(
      ["spec", "members", i, "role"],
      `${field}.role`,
      "role substitute requires spec.policy.allowSubstitutes: true",
      "enable substitutes in the policy or choose another role",
    );
  }
}

// A substitute names a member of the cell it can replace (one with a command, not a substitute),
// and has a command of its own.
function checkSubstitute(cell: DesiredCell, m: DesiredMember, i: number, field: string, err: Err): void {
  const target = m.replaces ? cell.members.find((o) => o.identity === m.replaces) : undefined;
  if (!m.replaces)
    err(
      ["spec", "members", i],
      `${field}.replaces`,
      "a substitute must name the member it replaces",
      "add replaces: <identity of a member of this cell>",
    );
  else if (!target)
    err(
      ["spec", "members", i, "replaces"],
      `${field}.replaces`,
      `${m.replaces} is not a member of this cell`,
      "name a member declared in spec.members",
    );
  else if (target.role === "substitute" || !target.command)
    err(
      ["spec", "members", i, "replaces"],
      `${field}.replaces`,
      `${m.replaces} cannot be replaced: only members with a command that are not substitutes can`,
      "name an executor with a command",
    );
  if (!m.command)
    err(
      ["spec", "members", i],
      `${field}.command`,
      "a substitute needs a command",
      "add the command that runs the substitute",
    );
}

// A "name: x" line (or "- name: x", or "name:" with x on the next line). Blanks are [ \t], never
// \s: \s matches line breaks, and a leading \s* then ran from every line start to the end of a
// file of blank lines (quadratic: a 1 MiB broken file stalled every load for half an hour).
const NAME_LINE =
  /^[ \t]*(?:-[ \t]*)?name:[ \t]*(?:\r?\n[ \t]*)?["']?([a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)["']?[ \t]*(?:#.*)?\r?$/gm;

// "metadata: {name: x, ...}", the flow form (one literal start, blanks then fixed characters).
const FLOW_NAME = /metadata:[ \t]*\{[ \t]*name:[ \t]*["']?([a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)["']?[ \t]*[,}]/g;

// Cell names a broken file still appears to declare. Over-matching only holds more cells.
export function salvageNames(text: string): string[] {
  const names = new Set<string>();
  for (const m of [...text.matchAll(NAME_LINE), ...text.matchAll(FLOW_NAME)]) {
    if (m[1]) names.add(m[1]);
  }
  return [...names].sort();
}

// Combine per-file results: cross-file rules, quarantine, and the desired state.
export function combine(
  results: FileResult[],
  texts: Map<string, string>,
  portfolioResults: PortfolioFileResult[] = [],
): { desired: Desired; diagnostics: Diagnostic[] } {
  return new Combiner().combine(results, texts, portfolioResults);
}

interface PortfolioView {
  inputs: PortfolioFileResult[]; // the results it was combined from (compared by identity)
  portfolios: Map<string, Portfolio>;
  diagnostics: Diagnostic[]; // from combining them (name and claim clashes)
  held: boolean;
}

// What the combiner remembers of one file under one view of the portfolios.
interface FileMemo {
  under: PortfolioView;
  missing: Diagnostic[];
  resolved: boolean;
}

// combine, remembering between calls what depends only on one cells.d/ file and the portfolios:
// a member naming a portfolio that does not exist, and the portfolio each agent resolves to. The
// daemon keeps one, so its view after an edit costs the changed file's cells, not every cell's.
// A file's result is taken as unchanged while it is the same object (the daemon's cache replaces
// the object of every file it reads again); the portfolios likewise.
export class Combiner {
  private ports: PortfolioView | undefined;
  private readonly perFile = new WeakMap<FileResult, FileMemo>();

  combine(
    results: FileResult[],
    texts: Map<string, string>,
    portfolioResults: PortfolioFileResult[] = [],
  ): { desired: Desired; diagnostics: Diagnostic[] } {
    const diagnostics: Diagnostic[] = [];
    for (const r of results) pushAll(diagnostics, r.diagnostics);
    for (const r of portfolioResults) pushAll(diagnostics, r.diagnostics);
    const view = this.portfolioView(portfolioResults);
    pushAll(diagnostics, view.diagnostics);
    // A file is held (quarantined) when it declares nothing, has an error, names a portfolio that
    // does not exist, or declares a cell another file declares too.
    const badFiles = this.missingPortfolios(results, view, diagnostics);
    for (const r of results) if (r.cells.length === 0 || hasErrors(r.diagnostics)) badFiles.add(r.file);
    declaredTwice(results, diagnostics, badFiles);
    const cells = this.goodCells(results, view, badFiles, diagnostics);
    return {
      desired: {
        cells,
        portfolios: view.portfolios,
        portfoliosHeld: view.held,
        quarantined: quarantinedFiles(results, texts, badFiles),
        files: [...results.map((r) => r.file), ...portfolioResults.map((r) => r.file)],
      },
      diagnostics,
    };
  }

  // What is remembered of file r under this view of the portfolios (worked out when it is new).
  private memo(r: FileResult, view: PortfolioView): FileMemo {
    let m = this.perFile.get(r);
    if (m?.under !== view) {
      m = { under: view, missing: view.held ? [] : missingPortfolios(r, view.portfolios), resolved: false };
      this.perFile.set(r, m);
    }
    return m;
  }

  // A member naming a portfolio that does not exist is an error in its cell's file: the files
  // with such a member.
  private missingPortfolios(results: FileResult[], view: PortfolioView, diagnostics: Diagnostic[]): Set<string> {
    const files = new Set<string>();
    for (const r of results) {
      const { missing } = this.memo(r, view);
      if (missing.length === 0) continue;
      pushAll(diagnostics, missing);
      files.add(r.file);
    }
    return files;
  }

  // The cells of the files that are not held, their portfolios resolved and the automatic egress
  // and gateway entries added. Those entries come from the operator's tables, read again (when
  // changed) on every combine; a broken table holds the file's egress cells as they are.
  private goodCells(
    results: FileResult[],
    view: PortfolioView,
    badFiles: Set<string>,
    diagnostics: Diagnostic[],
  ): Map<string, DesiredCell> {
    const cells = new Map<string, DesiredCell>();
    const tables = { gateway: gatewayTable(), egress: egressTables() }; // read once per load
    for (const r of results) {
      if (badFiles.has(r.file)) continue;
      const m = this.memo(r, view);
      if (!m.resolved) {
        resolveAll(r.cells, view.portfolios, view.held);
        m.resolved = true;
      }
      try {
        pushAll(diagnostics, addAutoEgress(r.cells, tables.egress));
        addGateway(r.cells, tables.gateway);
      } catch (err) {
        diagnostics.push({
          severity: "error",
          file: r.file,
          line: 1,
          col: 1,
          message: errorMessage(err),
          hint: "the operator fixes that file; the cells of this file are held as they are meanwhile",
        });
        badFiles.add(r.file);
        continue;
      }
      for (const c of r.cells) cells.set(c.name, c);
    }
    return cells;
  }

  private portfolioView(inputs: PortfolioFileResult[]): PortfolioView {
    const last = this.ports;
    if (last && last.inputs.length === inputs.length && last.inputs.every((r, i) => r === inputs[i])) return last;
    const diagnostics: Diagnostic[] = [];
    const combined = combinePortfolios(inputs, diagnostics);
    const held = inputs.some((r) => hasErrors(r.diagnostics) || r.portfolios.length === 0) || combined === undefined;
    this.ports = { inputs: [...inputs], portfolios: combined ?? new Map<string, Portfolio>(), diagnostics, held };
    return this.ports;
  }
}

// Push every item of more onto out (no spread: a fleet's diagnostics can outnumber the arguments
// a call may take).
function pushAll<T>(out: T[], more: readonly T[]): void {
  for (const x of more) out.push(x);
}

// A cell declared in more than one place is an error at each declaration, and holds each file.
function declaredTwice(results: FileResult[], diagnostics: Diagnostic[], badFiles: Set<string>): void {
  const declared = new Map<string, DesiredCell[]>();
  for (const r of results) {
    for (const c of r.cells) {
      const decls = declared.get(c.name);
      if (decls) decls.push(c);
      else declared.set(c.name, [c]);
    }
  }
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
}

// The held files, each with the names of the cells it declares (or appears to, when broken).
function quarantinedFiles(results: FileResult[], texts: Map<string, string>, badFiles: Set<string>): QuarantinedFile[] {
  if (badFiles.size === 0) return [];
  const byFile = new Map(results.map((r) => [r.file, r]));
  return [...badFiles].sort().map((file) => ({
    file,
    names: [
      ...new Set([...salvageNames(texts.get(file) ?? ""), ...(byFile.get(file)?.cells.map((c) => c.name) ?? [])]),
    ].sort(),
  }));
}

function missingPortfolios(r: FileResult, portfolios: ReadonlyMap<string, Portfolio>): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const c of r.cells) {
    c.members.forEach((m, i) => {
      if (m.portfolio && !portfolios.has(m.portfolio)) {
        out.push({
          severity: "error",
          ...m.source,
          field: `spec.members[${i}].portfolio`,
          message: `portfolio "${m.portfolio}" is not declared in portfolios/`,
          hint: `declare it, or name one of: ${[...portfolios.keys()].join(", ") || "(none yet)"}`,
        });
      }
    });
  }
  return out;
}

// Read and validate every cells.d/*.yaml and portfolios/*.yaml under configDir, credentials
// included (from the operator's sources in creds, by default Lazarus's own environment and
// settings). A file that cannot be read is quarantined alone; every other file still loads.
export async function loadConfig(
  configDir: string,
  creds?: CredentialContext,
): Promise<{ desired: Desired; diagnostics: Diagnostic[] }> {
  const ctx = creds ?? { host: hostSettings(process.env), hostEnv: process.env };
  const texts = new Map<string, string>();
  const { files, regular } = await configFiles(configDir, "cells.d");
  const scope = new LoadScope();
  scope.regular = regular;
  const loaded = await Promise.all(files.map((rel) => loadCellFile(configDir, rel, scope)));
  const results: FileResult[] = [];
  for (const l of loaded) {
    if (!l) continue;
    if (l.text !== undefined) texts.set(l.result.file, l.text);
    results.push(await checkFileCredentials(l.result, ctx));
  }
  return combine(results, texts, await loadPortfolioFiles(configDir));
}

// One cells.d/ file read safely, loaded, and its programs looked for; undefined when it is gone.
// scope: shared by the files of one load.
export async function loadCellFile(
  configDir: string,
  rel: string,
  scope = new LoadScope(),
): Promise<{ result: FileResult; text?: string } | undefined> {
  const src = await readSource(configDir, rel, scope.maxFileSize, scope.dirs, scope.regular.has(rel));
  if (src.kind === "missing") return undefined;
  if (src.kind === "problem") return { result: { file: rel, cells: [], diagnostics: [src.diagnostic] } };
  const result = await checkFilePython(await checkFileText(rel, src.text, scope), configDir);
  result.diagnostics.push(
    ...commandLinkErrors(result.cells, configDir),
    ...programWarnings(result.cells, configDir, scope.env),
  );
  return { result, text: src.text };
}
