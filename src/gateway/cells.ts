// Apply's side of the model gateway: <state>/gateway/cells/<cell>.json, written atomically, names
// the cell's incarnation, its budget, its models' prices and, per member whose portfolio the
// gateway brokers, that portfolio and the digest of the token of the member's current process
// (minted at every start, so a restart revokes the previous one; a process found gone or stopped
// has its token revoked at once: revokeGatewayToken). Removed at close and scrub;
// the gateway stops when no cell is left. Only apply and the daemon (one path) write here.
import { mkdir, readdir, rm } from "node:fs/promises";
import path from "node:path";
import type { CellRecord, MemberRecord } from "../cells/record.js";
import { effectiveBudget } from "../config/budget.js";
import type { GatewayReach } from "../config/types.js";
import { hostLimits } from "../host/limits.js";
import type { HostSettings } from "../host/settings.js";
import { readJson, writeFileAtomic } from "../util/fsx.js";
import { brokeredModels, gatewayReachOf } from "./broker.js";
import { gatewayProviders } from "./providers.js";
import { parseProviderTools } from "./provider-tools.js";
import {
  GATEWAY_MEMBER_PORT,
  gatewayCellsDir,
  memberNetnsFile,
  mintToken,
  tokenDigest,
  type GatewayCellFile,
  type GatewayMember,
  type GatewayRecord,
  type GatewaySettings,
  type PortfolioDoc,
  type Price,
} from "./state.js";
import { ensureGateway, holdingGateway, reloadGateway, runningGateway, stopGateway } from "./supervise.js";

export interface GatewayEnv {
  stateRoot: string;
  hostEnv: NodeJS.ProcessEnv;
  host: Pick<HostSettings, "secretsDir">;
}

// What a member is started with to reach the gateway (StartSpec.gateway).
export interface MemberGateway {
  token: string;
  port: number;
}

const cellFile = (stateRoot: string, cell: string): string => path.join(gatewayCellsDir(stateRoot), `${cell}.json`);

async function readCell(stateRoot: string, cell: string): Promise<GatewayCellFile | undefined> {
  const f = await readJson<GatewayCellFile>(cellFile(stateRoot, cell)).catch(() => undefined);
  return f?.formatVersion === 1 && Array.isArray(f.members) ? f : undefined;
}

// The prices of every model of the cell's brokered portfolios (a cost budget counts them).
function pricesOf(members: GatewayMember[]): Record<string, Price> | undefined {
  const out: Record<string, Price> = {};
  for (const m of members)
    for (const x of m.portfolio.models) if (x.price && !(x.model in out)) out[x.model] = { ...x.price };
  return Object.keys(out).length ? out : undefined;
}

// Write the cell's file with these members (none: the file goes, and the gateway with the last one).
async function writeCell(g: GatewayEnv, rec: CellRecord, members: GatewayMember[]): Promise<void> {
  if (members.length === 0) return forgetGatewayCell(g, rec.name);
  const budget = effectiveBudget(rec, hostLimits(g.hostEnv));
  const prices = pricesOf(members);
  const file: GatewayCellFile = {
    formatVersion: 1,
    cell: rec.name,
    uid: rec.uid,
    members,
    ...(budget ? { budget: { ...budget } } : {}),
    ...(prices ? { prices } : {}),
  };
  await writeFileAtomic(cellFile(g.stateRoot, rec.name), `${JSON.stringify(file)}\n`, 0o600);
}

async function ensureDir(g: GatewayEnv): Promise<void> {
  await mkdir(gatewayCellsDir(g.stateRoot), { recursive: true, mode: 0o700 });
}

// A member's resolved portfolio was written: the gateway serves the member when the portfolio
// names a provider it brokers (and the member can reach it), else the member has no entry.
// doc undefined: the member's portfolio was removed. Its token (if any) is kept until it restarts.
export async function setGatewayPortfolio(
  g: GatewayEnv,
  rec: CellRecord,
  m: Pick<MemberRecord, "identity" | "home">,
  doc: unknown,
): Promise<void> {
  const reach = gatewayReachOf(rec.backend, rec, g.hostEnv);
  const served =
    reach !== undefined && doc !== undefined && brokeredModels(doc, gatewayProviders(g.hostEnv)).length > 0;
  const was = await readCell(g.stateRoot, rec.name);
  if (!served && !was) return;
  const others = (was?.members ?? []).filter((x) => x.home !== m.home);
  const old = was?.members.find((x) => x.home === m.home);
  const members = served
    ? [
        ...others,
        {
          identity: m.identity,
          home: m.home,
          tokenDigest: old?.tokenDigest ?? "",
          portfolio: withoutHeader(doc),
        },
      ]
    : others;
  await ensureDir(g);
  await writeCell(g, rec, members);
}

// A member starts: a fresh token for this incarnation (its digest replaces the previous one's),
// and where the member reaches the gateway; undefined when the gateway does not serve it. A member
// in a network namespace of its own is marked usesGateway (its backend makes it a namespace file:
// bridge/member.ts), and its entry names that file, where the gateway opens the member's door.
export async function admitGatewayMember(
  g: GatewayEnv,
  rec: CellRecord,
  m: Pick<MemberRecord, "home" | "usesGateway">,
): Promise<MemberGateway | undefined> {
  const reach = gatewayReachOf(rec.backend, rec, g.hostEnv);
  const file = reach ? await readCell(g.stateRoot, rec.name) : undefined;
  const entry = file?.members.find((x) => x.home === m.home);
  delete m.usesGateway;
  if (!reach || !file || !entry) return undefined;
  if (reach === "namespace") m.usesGateway = true;
  const netns = reach === "namespace" ? { netns: memberNetnsFile(g.stateRoot, rec.uid, m.home) } : {};
  const token = mintToken();
  const members = file.members.map((x) => (x === entry ? { ...x, ...netns, tokenDigest: tokenDigest(token) } : x));
  await writeCell(g, rec, members);
  const running = await gatewayRunning(g);
  return { token, port: memberPort(reach, running.port) };
}

// The running gateway, started when none runs: one start at a time per state dir, across
// processes (its lock), and the state dir's gateway is recognised by its record.
function gatewayRunning(g: GatewayEnv): Promise<GatewayRecord> {
  return holdingGateway(
    g.stateRoot,
    async () => (await runningGateway(g.stateRoot)) ?? (await ensureGateway(g.stateRoot, gatewaySettings(g))),
  );
}

// The port a member calls: the gateway's own on the host's loopback, the bridge's in a namespace.
export function memberPort(reach: GatewayReach, hostPort: number): number {
  return reach === "host" ? hostPort : GATEWAY_MEMBER_PORT;
}

// The cell's budget (or the operator's ceilings) changed: the file says so; the gateway reads it
// at its next call. Nothing when the gateway serves none of the cell's members.
export async function syncGatewayBudget(g: GatewayEnv, rec: CellRecord): Promise<void> {
  const was = await readCell(g.stateRoot, rec.name);
  if (was) await writeCell(g, rec, was.members);
}

// A member's process is gone (it exited and is not restarted at once, or Lazarus stopped it): its
// token is refused from the gateway's next call on (the file rewritten atomically, the gateway
// told to reload). Its entry and portfolio stay, so its next start mints a new token.
export async function revokeGatewayToken(g: GatewayEnv, rec: CellRecord, home: string): Promise<void> {
  const was = await readCell(g.stateRoot, rec.name);
  const entry = was?.members.find((x) => x.home === home);
  if (!was || !entry || entry.tokenDigest === "") return;
  await writeCell(
    g,
    rec,
    was.members.map((x) => (x === entry ? { ...x, tokenDigest: "" } : x)),
  );
  await reloadGateway(g.stateRoot);
}

// A member left the cell: its entry (and so its token) goes.
export async function forgetGatewayMember(g: GatewayEnv, rec: CellRecord, home: string): Promise<void> {
  const was = await readCell(g.stateRoot, rec.name);
  if (was?.members.some((x) => x.home === home))
    await writeCell(
      g,
      rec,
      was.members.filter((x) => x.home !== home),
    );
}

// The cell closed or was scrubbed: its tokens are refused from the gateway's next call on, and the
// gateway stops when it serves no cell any more.
// uid: only that incarnation's file (a scrub of a closed cell leaves a re-created one's alone).
export async function forgetGatewayCell(g: Pick<GatewayEnv, "stateRoot">, cell: string, uid?: string): Promise<void> {
  if (uid !== undefined) {
    const was = await readCell(g.stateRoot, cell);
    if (!was || was.uid !== uid) return;
  }
  await rm(cellFile(g.stateRoot, cell), { force: true });
  if (!(await runningGateway(g.stateRoot))) return; // none runs: nothing to stop or tell
  // Decided under the gateway's lock: a member another process admits meanwhile finds it running.
  await holdingGateway(g.stateRoot, async () => {
    if ((await servedCells(g)).length === 0) await stopGateway(g.stateRoot);
    else await reloadGateway(g.stateRoot);
  });
}

async function servedCells(g: Pick<GatewayEnv, "stateRoot">): Promise<string[]> {
  return (await readdir(gatewayCellsDir(g.stateRoot)).catch(() => [] as string[])).filter((n) => n.endsWith(".json"));
}

// What the gateway process is started with: the operator's provider table, secrets root and the
// provider tools opened to every cell (a bad value fails here, before the gateway starts).
export function gatewaySettings(g: GatewayEnv): GatewaySettings {
  const providers = g.hostEnv.LAZARUS_PROVIDERS;
  const tools = g.hostEnv.LAZARUS_GATEWAY_PROVIDER_TOOLS;
  parseProviderTools(tools);
  return {
    ...(providers ? { providersFile: path.resolve(providers) } : {}),
    ...(tools ? { providerTools: tools } : {}),
    ...(g.host.secretsDir ? { secretsDir: g.host.secretsDir } : {}),
  };
}

// At the start of every apply (CLI and daemon): while some cell is served, the gateway runs with
// the operator's current settings (a dead one is started again). A gateway that cannot start fails
// no other cell: the starts of served members report it.
export async function keepGateway(g: GatewayEnv): Promise<void> {
  try {
    if ((await servedCells(g)).length === 0) return; // no lock taken (nor gateway/ made) in a state dir without
    await holdingGateway(g.stateRoot, async () => {
      if ((await servedCells(g)).length) await ensureGateway(g.stateRoot, gatewaySettings(g));
    });
  } catch {
    // reported where it matters: admitGatewayMember throws the same error for each served member
  }
}

// The portfolio as the gateway reads it (the member's file also carries formatVersion, selector).
function withoutHeader(doc: unknown): PortfolioDoc {
  const {
    formatVersion: _v,
    selector: _s,
    ...rest
  } = doc as PortfolioDoc & { formatVersion?: unknown; selector?: unknown };
  return rest;
}
