// The model gateway of one state dir: members call it with the providers' own APIs and their
// per-incarnation token; it picks the model from the member's resolved portfolio, calls the
// provider with the operator's key, falls back on the portfolio's error classes (sharing each
// cell's model health between its members), relays streams as they arrive, counts usage against
// the cell's budget and records every call as an event. Provider keys never leave this process.
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { watch, type FSWatcher } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { nextModel, type HealthEvent } from "../portfolio/next.js";
import type { ErrorClass } from "../portfolio/types.js";
import { secretPath } from "../host/secrets.js";
import type { HostSettings } from "../host/settings.js";
import { RotatingLog } from "../util/rotating-log.js";
import { errorMessage } from "../util/errors.js";
import { APIS, classify, type ApiShape, type GatewayError } from "./apis.js";
import { gatewayProviders, type GatewayProvider } from "./providers.js";
import { PROVIDER_TOOLS_SETTING, parseProviderTools, providerToolsRefusal } from "./provider-tools.js";
import type { ProviderToolKind } from "./provider-tools.js";
import { relaySuccess, type Served } from "./relay.js";
import { Doors, type DoorWant } from "../bridge/doors.js";
import {
  GATEWAY_MEMBER_PORT,
  gatewayCellsDir,
  gatewayEventsFile,
  readGatewayCells,
  tokenDigest,
  usageDir,
} from "./state.js";
import type { GatewayCellFile, GatewayMember, PortfolioDoc } from "./state.js";
import { UsageBook, costOf, overBudget } from "./usage.js";
import { Gone, callProvider, readSmall } from "./upstream.js";

export const PORTFOLIO_ALIAS = "portfolio";

export interface GatewayOptions {
  stateRoot: string;
  host: Pick<HostSettings, "secretsDir">;
  env?: NodeJS.ProcessEnv; // where LAZARUS_PROVIDERS and LAZARUS_GATEWAY_PROVIDER_TOOLS are read from
  now?: () => number;
  headersTimeoutMs?: number; // per attempt, until the provider's response headers
  maxBodyBytes?: number;
  maxEventBytes?: number;
  memberPort?: number; // the members' doors' port (GATEWAY_MEMBER_PORT)
  onReloaded?: (doors: Doors) => Promise<void>; // after each reload: which doors are open
}

interface Caller {
  cell: GatewayCellFile;
  member: GatewayMember;
}

interface Door {
  cellUid: string;
  home: string;
}

interface Attempt {
  model: string;
  provider: string;
  reason: string;
  failed?: ErrorClass;
}

const HEALTH_KEEP = 1000;
const KEY_RECHECK_MS = 1000;
const KEY_MAX_BYTES = 64 << 10;
// The events log's gathering window (RotatingLog's flushMs): a busy gateway appends its event lines
// once per window, not once per call; the first line of a quiet spell is appended at once.
const EVENTS_FLUSH_MS = 20;

export class Gateway {
  readonly server: http.Server;
  private byToken = new Map<string, Caller>();
  private providers = new Map<string, GatewayProvider>();
  private openTools: readonly ProviderToolKind[] = []; // the provider tools the operator opened
  private readonly health = new Map<string, HealthEvent[]>(); // by cell incarnation
  private readonly keys = new Map<string, { checked: number; value: string | undefined }>();
  private readonly usage: UsageBook;
  private readonly events: RotatingLog;
  private readonly now: () => number;
  private readonly doors: Doors; // members' own doors, in their network namespaces
  private loadedMtime = -1;
  private reloading: Promise<void> | undefined;
  // inotify on the cell files' directory: while it is armed and has seen nothing, a call skips the
  // stat (a change marks it stale; so does a watch that failed, which is dropped and re-armed)
  private watcher: FSWatcher | undefined;
  private stale = true;

  constructor(private opts: GatewayOptions) {
    this.now = opts.now ?? Date.now;
    this.usage = new UsageBook(usageDir(opts.stateRoot));
    this.events = new RotatingLog(gatewayEventsFile(opts.stateRoot), opts.maxEventBytes ?? 64 << 20, EVENTS_FLUSH_MS);
    this.server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => void this.handle(req, res));
    this.doors = new Doors(opts.memberPort ?? GATEWAY_MEMBER_PORT);
  }

  // New settings from the operator (the process re-reads them on SIGHUP): where the provider table
  // and the secrets root are. Takes effect at the next reload.
  configure(host: Pick<HostSettings, "secretsDir">, env: NodeJS.ProcessEnv): void {
    this.opts.host = host;
    this.opts.env = env;
    this.keys.clear();
  }

  // Read the cell files and the operator's provider table again (SIGHUP, or a cell changed), and
  // make the members' doors match them (a door for each member with a namespace file).
  async reload(onBad?: (why: string) => void): Promise<void> {
    this.loadedMtime = await cellsMtime(this.opts.stateRoot); // before reading: a later change reloads again
    const byToken = new Map<string, Caller>();
    const doors = new Map<string, DoorWant>();
    for (const cell of await readGatewayCells(this.opts.stateRoot, onBad)) {
      for (const member of cell.members) {
        byToken.set(member.tokenDigest, { cell, member });
        if (typeof member.netns === "string") doors.set(member.netns, this.door(cell.uid, member.home));
      }
    }
    this.openTools = parseProviderTools(this.opts.env?.[PROVIDER_TOOLS_SETTING]);
    this.byToken = byToken;
    this.providers = gatewayProviders(this.opts.env);
    await this.doors.sync(doors, (file, err) => onBad?.(`cannot open a door in ${file}: ${errorMessage(err)}`));
    await this.opts.onReloaded?.(this.doors);
  }

  // Each namespace file the gateway has a door in, with that namespace's inode.
  openDoors(): Doors {
    return this.doors;
  }

  // Read the cell files again when their directory changed since: apply writes a member's token
  // before the member starts and removes a closed cell's file, so a call sees both at once, without
  // waiting for a signal or the timer. The directory is stat'ed only when its watch saw a change
  // (or there is no watch); force: stat it all the same (the once-a-second timer, in case a
  // filesystem's watch stays silent).
  async reloadIfChanged(onBad?: (why: string) => void, force = false): Promise<void> {
    if (force) this.stale = true;
    if (this.watcher && !this.stale) return;
    this.watchCells(); // before the stat: a change after it is seen by the watch
    this.stale = false;
    if ((await cellsMtime(this.opts.stateRoot)) === this.loadedMtime) return;
    this.reloading ??= this.reload(onBad).finally(() => (this.reloading = undefined));
    await this.reloading;
  }

  // Arm the watch on the cell files' directory (not while it is missing: then each call stats it).
  // Any event marks the cells stale and drops the watch: the next call stats the directory and
  // arms a new one, so a directory removed and made again is watched again.
  private watchCells(): void {
    if (this.watcher) return;
    try {
      const w = watch(gatewayCellsDir(this.opts.stateRoot), { persistent: false });
      const drop = (): void => {
        this.stale = true;
        w.close();
        if (this.watcher === w) this.watcher = undefined;
      };
      w.on("change", drop);
      w.on("error", drop);
      this.watcher = w;
    } catch {
      this.watcher = undefined;
    }
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => resolve((this.server.address() as { port: number }).port));
    });
  }

  // A member's own door (in its network namespace): only that member's token is accepted there,
  // so a token that leaks to another member or cell is refused.
  private door(cellUid: string, home: string): DoorWant {
    return {
      tag: `${cellUid}/${home}`,
      server: () =>
        http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => void this.handle(req, res, { cellUid, home })),
    };
  }

  async close(): Promise<void> {
    this.watcher?.close();
    this.watcher = undefined;
    this.doors.closeAll();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.events.close();
    await this.usage.close();
  }

  private async handle(req: IncomingMessage, res: ServerResponse, door?: Door): Promise<void> {
    const api = apiFor(req);
    try {
      await this.reloadIfChanged();
      let caller = this.authenticate(req);
      if (!caller && this.watcher) {
        // a token written just now, whose watch event is not handled yet: look before refusing
        this.stale = true;
        await this.reloadIfChanged();
        caller = this.authenticate(req);
      }
      if (!caller) return answer(res, api, "auth", "invalid token: use the token Lazarus gave this member");
      if (door && (door.cellUid !== caller.cell.uid || door.home !== caller.member.home)) {
        return answer(res, api, "auth", "this token belongs to another member: use your own");
      }
      const url = (req.url ?? "/").split("?")[0];
      if (req.method === "GET" && url === "/v1/models") return this.listModels(res, api, caller);
      if (req.method !== "POST" || url !== api.route) {
        return answer(
          res,
          api,
          "model",
          `the model gateway serves POST ${APIS.openai.route}, POST ${APIS.anthropic.route} and GET /v1/models`,
        );
      }
      await this.complete(req, res, api, caller);
    } catch (err) {
      if (!res.headersSent) answer(res, api, "upstream", `model gateway: ${errorMessage(err)}`);
      else res.destroy();
    }
  }

  private authenticate(req: IncomingMessage): Caller | undefined {
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "")?.[1];
    const key = req.headers["x-api-key"];
    const token = bearer ?? (typeof key === "string" ? key : undefined);
    return token ? this.byToken.get(tokenDigest(token)) : undefined;
  }

  private listModels(res: ServerResponse, api: ApiShape, caller: Caller): void {
    const models = this.modelsOf(caller.member.portfolio, api).map((m) => ({ id: m.model, provider: m.provider }));
    send(res, 200, api.modelList([...models, { id: PORTFOLIO_ALIAS, provider: "lazarus" }]));
  }

  private modelsOf(p: PortfolioDoc, api: ApiShape): PortfolioDoc["models"] {
    return p.models.filter((m) => this.providers.get(m.provider)?.api === api.name);
  }

  private async complete(req: IncomingMessage, res: ServerResponse, api: ApiShape, caller: Caller): Promise<void> {
    const started = this.now();
    const body = await readBody(req, this.opts.maxBodyBytes ?? 32 << 20);
    if (body === "too_large")
      return answer(res, api, "too_large", "the request body is larger than the gateway accepts");
    if (!body || typeof body.model !== "string")
      return answer(res, api, "bad_request", "the request needs a JSON body with a model");
    const portfolio = this.chainFor(caller.member.portfolio, api, body.model);
    if (typeof portfolio === "string") return answer(res, api, "model", portfolio);
    const shut = providerToolsRefusal(api.providerTools(body), this.openTools);
    if (shut) {
      this.event(caller, { api: api.name, asked: body.model, status: 403, refused: shut, latencyMs: 0 });
      return answer(res, api, "forbidden", shut);
    }
    const spent = await this.budgetLeft(caller);
    if (spent) {
      this.event(caller, { api: api.name, asked: body.model, status: 429, refused: `budget: ${spent}`, latencyMs: 0 });
      return answer(
        res,
        api,
        "budget",
        `the budget of cell ${caller.cell.cell} is spent (${spent}); it frees up as usage leaves its window`,
      );
    }
    await this.attempts(req, res, { api, caller, portfolio, body, started, gone: new Gone(res) });
  }

  // The portfolio to serve a request for `asked` from: the whole chain for the alias (or the
  // portfolio's own name), the chain from that model on for a model in it; a message otherwise.
  private chainFor(p: PortfolioDoc, api: ApiShape, asked: string): PortfolioDoc | string {
    const models = this.modelsOf(p, api);
    if (models.length === 0) return `portfolio ${p.name} has no model served through the ${api.name} API`;
    if (asked === PORTFOLIO_ALIAS || asked === p.name) return { ...p, models };
    const i = models.findIndex((m) => m.model === asked);
    if (i < 0) {
      return `model ${asked} is not in portfolio ${p.name} for the ${api.name} API: ask for ${PORTFOLIO_ALIAS} or one of ${models.map((m) => m.model).join(", ")}`;
    }
    return { ...p, models: [...models.slice(i), ...models.slice(0, i)] };
  }

  private async budgetLeft(caller: Caller): Promise<string | undefined> {
    const b = caller.cell.budget;
    if (!b) return undefined;
    return overBudget(b, await this.usage.spent(caller.cell.cell, this.now(), b.periodMs));
  }

  private async attempts(req: IncomingMessage, res: ServerResponse, run: Run): Promise<void> {
    const { caller, portfolio } = run;
    // The cell's model health as this request found it: its own failures count for later requests
    // (and the other members), not for the order of this one's chain.
    const health = [...this.healthOf(caller)];
    const tried: Attempt[] = [];
    let last: Failure | undefined;
    let afterError: ErrorClass | undefined;
    let retryAfterMs: number | undefined;
    for (let attempt = 1; ; attempt++) {
      const next = nextModel({
        portfolio,
        attempt,
        ...(afterError ? { afterError } : {}),
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
        health,
        now: this.now(),
      });
      if (!next.ok) return this.giveUp(res, run, tried, last, next.reason);
      if (next.waitMs > 0) await run.gone.pause(Math.min(next.waitMs, portfolio.retries.maxRetryAfterMs));
      if (run.gone.went) return;
      const at: Attempt = { model: next.model.model, provider: next.model.provider, reason: next.reason };
      tried.push(at);
      const out = await this.once(req, run, at);
      if (out.kind === "served") return this.served(res, run, tried, out.reply);
      // the member left while the provider was answering: not the model's failure
      if (run.gone.went) return this.giveUp(res, run, tried, last, "the member went away");
      if (out.kind === "final") return relayError(res, out.status, out.headers, out.body, tried);
      at.failed = out.cls;
      this.report(caller, at.model, out.cls);
      afterError = out.cls;
      retryAfterMs = out.retryAfterMs;
      if (out.response) last = out.response;
    }
  }

  // One attempt: served, a failure worth the next model, or the member's own error (final).
  private async once(req: IncomingMessage, run: Run, at: Attempt): Promise<Once> {
    const provider = this.providers.get(at.provider);
    const key = provider ? await this.keyOf(provider) : undefined;
    if (!provider || key === undefined) return { kind: "failed", cls: "auth" };
    const prepared = run.api.prepare(run.body, at.model);
    const reply = await callProvider({
      api: run.api,
      provider,
      key,
      body: Buffer.from(JSON.stringify(prepared.body)),
      headers: req.headers,
      timeoutMs: this.opts.headersTimeoutMs ?? 600_000,
      gone: run.gone,
    });
    if (!reply.ok) return { kind: "failed", cls: reply.timeout ? "timeout" : "server_error" };
    const status = reply.res.statusCode ?? 502;
    if (status < 300)
      return { kind: "served", reply: { res: reply.res, stripUsageChunk: prepared.stripUsageChunk, at } };
    const text = await readSmall(reply.res);
    const cls = classify(status, text.toString("utf8"));
    const response = { status, headers: reply.res.headers, body: text };
    if (!cls) return { kind: "final", ...response };
    return { kind: "failed", cls, retryAfterMs: retryAfter(reply.res.headers), response };
  }

  private async served(res: ServerResponse, run: Run, tried: Attempt[], reply: Served): Promise<void> {
    const { caller } = run;
    this.report(caller, reply.at.model, "ok");
    const fallback =
      tried.length > 1
        ? tried
            .slice(0, -1)
            .map((t) => `${t.model}: ${t.failed}`)
            .join("; ")
        : undefined;
    const result = await relaySuccess(res, run.api, reply, {
      attempts: tried.length,
      ...(fallback ? { fallback } : {}),
    });
    const price = caller.cell.prices?.[reply.at.model];
    const usage = result.usage ?? { input: 0, output: 0 };
    const cost = costOf(usage, price);
    const recorded = this.usage.record(caller.cell.cell, {
      time: this.now(),
      member: caller.member.home,
      model: reply.at.model,
      ...usage,
      cost,
    });
    this.event(caller, {
      api: run.api.name,
      asked: String(run.body.model),
      used: reply.at.model,
      provider: reply.at.provider,
      ...(fallback ? { fallback } : {}),
      status: reply.res.statusCode ?? 200,
      tokensIn: usage.input,
      tokensOut: usage.output,
      cost,
      latencyMs: this.now() - run.started,
      ...(result.firstByteMs !== undefined ? { firstByteMs: result.firstByteMs } : {}),
      ...(result.complete ? {} : { incomplete: true }),
    });
    await recorded;
  }

  private giveUp(res: ServerResponse, run: Run, tried: Attempt[], last: Failure | undefined, reason: string): void {
    this.event(run.caller, {
      api: run.api.name,
      asked: String(run.body.model),
      status: last?.status ?? 502,
      refused: reason,
      tried: tried.map((t) => `${t.model}: ${t.failed ?? "unfinished"}`),
      latencyMs: this.now() - run.started,
    });
    if (run.gone.went) return;
    if (last) return relayError(res, last.status, last.headers, last.body, tried);
    answer(res, run.api, "upstream", reason);
  }

  private healthOf(caller: Caller): HealthEvent[] {
    return this.health.get(caller.cell.uid) ?? [];
  }

  private report(caller: Caller, model: string, outcome: HealthEvent["outcome"]): void {
    const list = this.health.get(caller.cell.uid) ?? [];
    list.push({ time: this.now(), model, outcome, member: caller.member.home });
    if (list.length > HEALTH_KEEP) list.splice(0, list.length - HEALTH_KEEP);
    this.health.set(caller.cell.uid, list);
  }

  // A provider's key, from the operator's secrets root: looked up again at most once a second (a
  // rotated key is used from the next second on), never per call.
  private async keyOf(p: GatewayProvider): Promise<string | undefined> {
    const hit = this.keys.get(p.name);
    if (hit && this.now() - hit.checked < KEY_RECHECK_MS) return hit.value;
    const value = await readKey(p, this.opts.host);
    this.keys.set(p.name, { checked: this.now(), value });
    return value;
  }

  private event(caller: Caller, details: Record<string, unknown>): void {
    this.events.write({
      time: new Date(this.now()).toISOString(),
      cell: caller.cell.cell,
      member: caller.member.home,
      ...details,
    });
  }
}

interface Run {
  api: ApiShape;
  caller: Caller;
  portfolio: PortfolioDoc;
  body: Record<string, unknown>;
  started: number;
  gone: Gone;
}

interface Failure {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

type Once =
  | { kind: "served"; reply: Served }
  | ({ kind: "final" } & Failure)
  | { kind: "failed"; cls: ErrorClass; retryAfterMs?: number; response?: Failure };

// The API a request speaks, for its errors: Anthropic's by its path or version header.
function apiFor(req: IncomingMessage): ApiShape {
  return (req.url ?? "").startsWith(APIS.anthropic.route) || req.headers["anthropic-version"]
    ? APIS.anthropic
    : APIS.openai;
}

// An answer of the gateway's own. One given before the request's body was read to its end (a refusal)
// closes the connection: else node would read the rest of the body, however long, to keep it alive.
function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  const close = res.req.complete ? {} : { connection: "close" };
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    ...close,
    ...headers,
  });
  res.end(text);
}

function answer(res: ServerResponse, api: ApiShape, kind: GatewayError, message: string): void {
  const e = api.error(kind, message);
  send(res, e.status, e.body, kind === "budget" ? { "retry-after": "60", "x-lazarus-refused": "budget" } : {});
}

// The provider's own error, as it sent it, when the portfolio has nothing left to try.
function relayError(
  res: ServerResponse,
  status: number,
  headers: http.IncomingHttpHeaders,
  body: Buffer,
  tried: Attempt[],
): void {
  const out: Record<string, string> = { "x-lazarus-attempts": String(tried.length) };
  for (const h of ["content-type", "retry-after", "request-id", "x-request-id"]) {
    const v = headers[h];
    if (typeof v === "string") out[h] = v;
  }
  const last = tried.at(-1);
  if (last) out["x-lazarus-model"] = last.model;
  res.writeHead(status, { ...out, "content-length": body.length });
  res.end(body);
}

async function cellsMtime(stateRoot: string): Promise<number> {
  return (await stat(gatewayCellsDir(stateRoot)).catch(() => undefined))?.mtimeMs ?? 0;
}

async function readKey(p: GatewayProvider, host: Pick<HostSettings, "secretsDir">): Promise<string | undefined> {
  if (!host.secretsDir) return undefined;
  const found = await secretPath(p.keyFile, host as HostSettings, "provider keys", "openai/key");
  if (!found.ok) return undefined;
  const st = await stat(found.path).catch(() => undefined);
  if (!st?.isFile() || st.size > KEY_MAX_BYTES) return undefined;
  return (await readFile(found.path, "utf8")).trim() || undefined;
}

function retryAfter(headers: http.IncomingHttpHeaders): number | undefined {
  const ms = Number(headers["retry-after-ms"]);
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const s = Number(headers["retry-after"]);
  return Number.isFinite(s) && s >= 0 ? s * 1000 : undefined;
}

// The member's JSON body, gathered from its chunks as they come (no async iterator per call); a
// body past max is refused unread: no more is gathered, and the refusal's answer closes the
// connection (destroying the request here would close it before the answer is written).
function readBody(req: IncomingMessage, max: number): Promise<Record<string, unknown> | undefined | "too_large"> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    const onData = (chunk: Buffer): void => {
      n += chunk.length;
      if (n <= max) return void parts.push(chunk);
      req.off("data", onData);
      req.pause();
      resolve("too_large");
    };
    req.on("data", onData);
    req.on("end", () => resolve(jsonObject(parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts))));
    req.on("error", reject);
  });
}

function jsonObject(bytes: Buffer): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(bytes.toString("utf8")) as unknown;
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
