// Which cells the model gateway serves and which of their credentials it holds instead of their
// members. Decided from the operator's settings (LAZARUS_GATEWAY, LAZARUS_PROVIDERS) and the
// backend contract (how its members reach the gateway), never from a backend's name.
import path from "node:path";
import type { DesiredCell, GatewayReach } from "../config/types.js";
import { findBackend } from "../backends/table.js";
import { gatewayProviders, type GatewayProvider } from "./providers.js";
import { once } from "../util/memo.js";

export const gatewayOn = (env: NodeJS.ProcessEnv): boolean => env.LAZARUS_GATEWAY !== "off";

// How a cell's members reach the gateway, or undefined: it is off, or they cannot.
export function gatewayReachOf(
  backend: string,
  cell: { network?: "none" | "host" | "egress" | undefined },
  env: NodeJS.ProcessEnv,
): GatewayReach | undefined {
  return gatewayOn(env) ? reachOf(backend, cell) : undefined;
}

const reachOf = (backend: string, cell: { network?: "none" | "host" | "egress" | undefined }) =>
  findBackend(backend)?.gatewayReach?.(cell);

// The models of a portfolio document whose provider the gateway brokers.
export function brokeredModels(doc: unknown, providers: ReadonlyMap<string, GatewayProvider>): string[] {
  const models = (doc as { models?: { model?: unknown; provider?: unknown }[] } | undefined)?.models ?? [];
  return models.filter((m) => typeof m.provider === "string" && providers.has(m.provider)).map((m) => String(m.model));
}

// The credentials of a cell that name a brokered provider's key file: the gateway reads that key
// from the secrets root itself, so it never enters a cell the gateway serves (whatever portfolio
// its members resolve to, so a portfolio file held broken never lets one in).
export function brokeredCredentials(credentials: DesiredCell["credentials"], keyFiles: ReadonlySet<string>): string[] {
  return Object.entries(credentials)
    .filter(([, source]) => "file" in source && keyFiles.has(path.posix.normalize(source.file)))
    .map(([name]) => name)
    .sort();
}

// The key files of a provider table, as brokeredCredentials compares them.
export function providerKeyFiles(providers: ReadonlyMap<string, GatewayProvider>): ReadonlySet<string> {
  return new Set([...providers.values()].map((p) => path.posix.normalize(p.keyFile)));
}

// Fill in each cell's gateway (load, after portfolios are resolved). providers: the operator's
// table, read once per load by the caller (gatewayTable); it throws BAD_SETTING when the table is
// broken (the caller holds the file's cells).
export function addGateway(
  cells: Iterable<DesiredCell>,
  providers: () => ReadonlyMap<string, GatewayProvider>,
  env: NodeJS.ProcessEnv = process.env,
): void {
  const on = gatewayOn(env); // read once for the cells of one call
  const keyFiles = once(() => providerKeyFiles(providers())); // at the first cell served (it may throw)
  for (const c of cells) {
    delete c.gateway;
    const reach = on ? reachOf(c.backend, c) : undefined;
    if (reach) c.gateway = { reach, brokered: brokeredCredentials(c.credentials, keyFiles()) };
  }
}

// The operator's provider table, read at the first cell that needs it and then kept for the rest
// of one load (a broken table is read once and throws at each ask, so each file's cells are held alike).
export function gatewayTable(env: NodeJS.ProcessEnv = process.env): () => ReadonlyMap<string, GatewayProvider> {
  return once(() => gatewayProviders(env));
}
