// A member's gateway token lives only as long as its process: once apply finds the member gone
// (here killed with SIGKILL, its restart held back by the backoff), the real gateway refuses its
// old token (401), and the token its restart is given works. Through `lazarus apply` for real,
// against a stand-in provider on 127.0.0.1 (no real provider is reachable from this machine).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanup, configDir, lazarus, readRecord, tempDir, waitFor } from "../helpers.js";
import { readGatewayRecord } from "../../src/gateway/state.js";
import { stopGateway } from "../../src/gateway/supervise.js";
import { isAlive } from "../../src/host/proc.js";
import { startStandin, type Standin } from "./standin.js";

const KEY = "sk-operator-revoke-0123456789";
const MEMBER = path.resolve(import.meta.dirname, "..", "fixtures", "gateway-member.mjs");

let state: string;
let config: string;
let secrets: string;
let standin: Standin;
let env: Record<string, string>;

const run = (...args: string[]) => lazarus([...args, "--config", config, "--state-dir", state], { env });
const cellDir = () => path.join(state, "cells", "rv");
const member = () => readRecord(cellDir()).members[0]!;
const tokenOf = (pid: number): string =>
  readFileSync(`/proc/${pid}/environ`, "utf8")
    .split("\0")
    .find((l) => l.startsWith("OPENAI_API_KEY="))!
    .slice("OPENAI_API_KEY=".length);
const ask = async (token: string) => {
  const port = (await readGatewayRecord(state))!.port;
  return new OpenAI({ apiKey: token, baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 }).chat.completions.create({
    model: "gpt-ok",
    messages: [{ role: "user", content: "hi" }],
  });
};

beforeAll(async () => {
  standin = await startStandin({ key: KEY });
  state = tempDir("lazarus-gw-revoke-state-");
  secrets = tempDir("lazarus-gw-revoke-secrets-");
  mkdirSync(path.join(secrets, "so"));
  writeFileSync(path.join(secrets, "so", "key"), `${KEY}\n`);
  const providers = path.join(secrets, "providers.yaml");
  writeFileSync(providers, `providers:\n  - {name: so, api: openai, baseUrl: "${standin.url}/v1", keyFile: so/key}\n`);
  env = { LAZARUS_PROVIDERS: providers, LAZARUS_SECRETS_DIR: secrets };
  config = configDir({
    "portfolios/rv.yaml": [
      "apiVersion: lazarus/v1",
      "kind: Portfolio",
      "metadata: {name: rv}",
      "spec:",
      "  appliesTo: {agents: [ezra]}",
      "  models:",
      "    - {model: gpt-ok, provider: so}",
      "",
    ].join("\n"),
    "cells.d/rv.yaml": [
      "apiVersion: lazarus/v1",
      "kind: Cell",
      "metadata: {name: rv}",
      "spec:",
      "  project: Org/repo#1",
      "  owner: human:alexander",
      "  members:",
      "    - identity: agent:ezra",
      "      role: executor",
      `      command: ["node", "${MEMBER}", "plain"]`,
      "",
    ].join("\n"),
  });
  const r = await run("apply");
  expect(r.exitCode, r.stdout + r.stderr).toBe(0);
  await waitFor(() => existsSync(path.join(cellDir(), "home", "ezra", "calls.json")), 15_000);
}, 60_000);

afterAll(async () => {
  await stopGateway(state);
  await standin?.close();
  cleanup(state, config, secrets);
});

describe("a member's gateway token", () => {
  it("is refused once apply finds the member gone, and its restart's new token is served", async () => {
    const before = member();
    const old = tokenOf(before.pid!);
    expect((await ask(old)).model).toBe("gpt-ok"); // served while the member runs
    process.kill(before.pid!, "SIGKILL");
    await waitFor(() => !isAlive(before.pid, before.startTime)); // by /proc state: Z is dead
    const down = await run("apply");
    expect(down.exitCode, down.stdout + down.stderr).toBe(0);
    expect(member().status).toBe("down"); // its restart waits for the backoff
    await expect(ask(old)).rejects.toMatchObject({ status: 401 });
    const later = new Date(Date.now() + 60_000).toISOString();
    const up = await run("apply", "--now", later);
    expect(up.exitCode, up.stdout + up.stderr).toBe(0);
    const after = member();
    expect(after.status).toBe("running");
    expect(after.pid).not.toBe(before.pid);
    const fresh = tokenOf(after.pid!);
    expect(fresh).not.toBe(old);
    expect((await ask(fresh)).model).toBe("gpt-ok");
    await expect(ask(old)).rejects.toMatchObject({ status: 401 });
  }, 60_000);
});
