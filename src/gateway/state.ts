// Where the model gateway's inputs and outputs live: <state>/gateway/ (Lazarus's own, 0700; no
// member sees it). One file per cell names its members' token digests, their resolved portfolios
// and the cell's budget; usage/<cell>.jsonl counts what each cell spent; events.jsonl records
// every call. Tokens are minted per member incarnation and stored as digests only.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import type { Portfolio } from "../portfolio/types.js";
import { memberNetnsFile } from "../bridge/netns.js";
import { errorMessage } from "../util/errors.js";

export type PortfolioDoc = Omit<Portfolio, "source">;

// Prices per million tokens, in the portfolio's currency (what `cost` budgets are counted in).
export interface Price {
  input: number;
  output: number;
}

export interface Budget {
  tokens?: number;
  cost?: number;
  periodMs: number; // a rolling window
}

export interface GatewayMember {
  identity: string;
  home: string;
  tokenDigest: string; // sha256 hex of the member's token
  portfolio: PortfolioDoc;
  // its network namespace file (memberNetnsFile), for a member without the host's network: the
  // gateway opens its door there, on 127.0.0.1:GATEWAY_MEMBER_PORT, accepting only its token
  netns?: string;
}

// Where a member with a namespace file reaches the gateway: http://127.0.0.1:4000 inside it.
export const GATEWAY_MEMBER_PORT = 4000;

// The namespace file of a member (made by its backend before it starts: bridge/member.ts).
export { memberNetnsFile };

export interface GatewayCellFile {
  formatVersion: 1;
  cell: string;
  uid: string; // the cell incarnation
  members: GatewayMember[];
  budget?: Budget;
  prices?: Record<string, Price>; // by model
}

export const gatewayDir = (stateRoot: string): string => path.join(path.resolve(stateRoot), "gateway");
export const gatewayCellsDir = (stateRoot: string): string => path.join(gatewayDir(stateRoot), "cells");
export const gatewayEventsFile = (stateRoot: string): string => path.join(gatewayDir(stateRoot), "events.jsonl");
export const usageDir = (stateRoot: string): string => path.join(gatewayDir(stateRoot), "usage");

export const TOKEN_PREFIX = "lzg-";

// A new member token: 192 random bits, shown to the member once (in its environment), never stored.
export function mintToken(): string {
  return TOKEN_PREFIX + randomBytes(24).toString("base64url");
}

export function tokenDigest(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

// Whether two digests are the same, in constant time.
export function sameDigest(a: string, b: string): boolean {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

// Every cell file (one that is not one is skipped: onBad says why). The directory is Lazarus's own.
export async function readGatewayCells(stateRoot: string, onBad?: (why: string) => void): Promise<GatewayCellFile[]> {
  const dir = gatewayCellsDir(stateRoot);
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: GatewayCellFile[] = [];
  for (const n of names.filter((x) => x.endsWith(".json")).sort()) {
    try {
      const f = JSON.parse(await readFile(path.join(dir, n), "utf8")) as GatewayCellFile;
      if (f.formatVersion === 1 && typeof f.cell === "string" && Array.isArray(f.members)) out.push(f);
      else onBad?.(`${n}: not a gateway cell file`);
    } catch (err) {
      onBad?.(`${n}: ${errorMessage(err)}`);
    }
  }
  return out;
}

// What the gateway process is started with (written by whoever ensures it runs; read on reload).
export interface GatewaySettings {
  providersFile?: string; // LAZARUS_PROVIDERS
  secretsDir?: string; // LAZARUS_SECRETS_DIR
  providerTools?: string; // LAZARUS_GATEWAY_PROVIDER_TOOLS, as the operator wrote it
  port?: number; // fixed by whoever starts it; unset: the port it had before, else one the kernel picks
}

export interface GatewayRecord {
  pid: number;
  startTime: number;
  port: number;
}

export const gatewaySettingsFile = (stateRoot: string): string => path.join(gatewayDir(stateRoot), "settings.json");
export const gatewayRecordFile = (stateRoot: string): string => path.join(gatewayDir(stateRoot), "gateway.json");
// The doors the gateway has open (bridge/doors.ts: its pid, each namespace file and inode).
export const gatewayDoorsFile = (stateRoot: string): string => path.join(gatewayDir(stateRoot), "doors.json");

export async function readGatewaySettings(stateRoot: string): Promise<GatewaySettings> {
  try {
    return JSON.parse(await readFile(gatewaySettingsFile(stateRoot), "utf8")) as GatewaySettings;
  } catch {
    return {};
  }
}

export async function readGatewayRecord(stateRoot: string): Promise<GatewayRecord | undefined> {
  try {
    return JSON.parse(await readFile(gatewayRecordFile(stateRoot), "utf8")) as GatewayRecord;
  } catch {
    return undefined;
  }
}
