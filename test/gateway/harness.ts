// What the gateway's `lazarus apply` tests share: a stand-in provider (standin.ts) on 127.0.0.1,
// a secrets dir holding its key and a providers file naming it, a config dir of portfolios and
// cells whose process members run test/fixtures/gateway-member.mjs, a first apply, and the
// member's and the gateway's side of it (a member's environment, a call to the gateway).
//
//   let gw: GatewayRun;
//   beforeAll(async () => (gw = await startGatewayRun({ key, prefix, secrets, providers, files, homes })), 60_000);
//   afterAll(() => gw?.end());
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import OpenAI from "openai";
import { expect } from "vitest";
import { cleanup, configDir, lazarus, readRecord, tempDir, waitFor } from "../helpers.js";
import type { MemberRecord } from "../../src/cells/record.js";
import { readGatewayRecord } from "../../src/gateway/state.js";
import { stopGateway } from "../../src/gateway/supervise.js";
import { startStandin, type Standin } from "./standin.js";

export const MEMBER = path.resolve(import.meta.dirname, "..", "fixtures", "gateway-member.mjs");

// A portfolio of models for the agents named; no retries, fallback on the usual errors.
export function portfolio(name: string, agents: string[], models: string[]): string {
  return [
    "apiVersion: lazarus/v1",
    "kind: Portfolio",
    `metadata: {name: ${name}}`,
    "spec:",
    `  appliesTo: {agents: [${agents.join(", ")}]}`,
    "  models:",
    ...models.map((m) => `    - ${m}`),
    "  retries: {attempts: 0, backoff: 0s, maxRetryAfter: 1s}",
    "  fallbackOn: [rate_limit, timeout, server_error]",
    "",
  ].join("\n");
}

// A process cell of one member, agent:<agent>, running the gateway member with these calls.
export function cell(name: string, agent: string, calls: string, extra: string[] = [], state = "active"): string {
  return [
    "apiVersion: lazarus/v1",
    "kind: Cell",
    `metadata: {name: ${name}}`,
    "spec:",
    "  project: Org/repo#1",
    "  owner: human:alexander",
    `  state: ${state}`,
    ...extra,
    "  members:",
    `    - identity: agent:${agent}`,
    "      role: executor",
    `      command: ["node", "${MEMBER}", "${calls}"]`,
    "",
  ].join("\n");
}

// A process's environment, from /proc.
export function environ(pid: number): Record<string, string> {
  return Object.fromEntries(
    readFileSync(`/proc/${pid}/environ`, "utf8")
      .split("\0")
      .filter(Boolean)
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
}

// One chat completion through the gateway at port, with a member's token.
export const ask = (token: string, port: number, model = "gpt-ok") =>
  new OpenAI({ apiKey: token, baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 }).chat.completions.create({
    model,
    messages: [{ role: "user", content: "hi" }],
  });

export interface GatewayRunOptions {
  key: string; // the operator's provider key, the only one the stand-in serves
  prefix: string; // of the temporary dirs' names
  secrets: Record<string, string>; // files of the secrets dir (relative path → content)
  providers: (standinUrl: string) => string[]; // the providers file's entries
  files: Record<string, string>; // the config dir's
  homes: [cell: string, member: string][]; // members whose calls.json the first apply waits for
}

export interface GatewayRun {
  state: string;
  config: string;
  secrets: string;
  standin: Standin;
  env: Record<string, string>;
  run(...args: string[]): ReturnType<typeof lazarus>;
  cellDir(cell: string): string;
  home(cell: string, who: string): string;
  memberOf(cell: string): MemberRecord;
  port(): Promise<number>; // the gateway's
  end(): Promise<void>;
}

// The stand-in, the dirs, and a first `lazarus apply` (exit 0) whose members have made their calls.
export async function startGatewayRun(o: GatewayRunOptions): Promise<GatewayRun> {
  const standin = await startStandin({ key: o.key });
  const state = tempDir(`${o.prefix}-state-`);
  const secrets = tempDir(`${o.prefix}-secrets-`);
  for (const [f, v] of Object.entries(o.secrets)) {
    mkdirSync(path.dirname(path.join(secrets, f)), { recursive: true });
    writeFileSync(path.join(secrets, f), `${v}\n`);
  }
  const providers = path.join(secrets, "providers.yaml");
  writeFileSync(providers, ["providers:", ...o.providers(standin.url).map((p) => `  - ${p}`), ""].join("\n"));
  const env = { LAZARUS_PROVIDERS: providers, LAZARUS_SECRETS_DIR: secrets };
  const config = configDir(o.files);
  const cellDir = (cell: string) => path.join(state, "cells", cell);
  const home = (cell: string, who: string) => path.join(cellDir(cell), "home", who);
  const gw: GatewayRun = {
    state,
    config,
    secrets,
    standin,
    env,
    run: (...args) => lazarus([...args, "--config", config, "--state-dir", state], { env }),
    cellDir,
    home,
    memberOf: (cell) => readRecord(cellDir(cell)).members[0]!,
    port: async () => (await readGatewayRecord(state))!.port,
    end: async () => {
      await stopGateway(state);
      await standin.close();
      cleanup(state, config, secrets);
    },
  };
  try {
    const r = await gw.run("apply");
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    for (const [c, who] of o.homes) await waitFor(() => existsSync(path.join(home(c, who), "calls.json")), 15_000);
  } catch (err) {
    await gw.end(); // nothing of a failed start is left running
    throw err;
  }
  return gw;
}
