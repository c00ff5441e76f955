// The gateway as a process of its state dir: started detached, found again, restarted on the same
// port after a kill -9 (so process members' base URLs stay right), keys never in its environment.
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureGateway, runningGateway, stopGateway } from "../../src/gateway/supervise.js";
import { gatewayCellsDir, mintToken, tokenDigest } from "../../src/gateway/state.js";
import { startStandin, type Standin } from "./standin.js";
import { isAlive } from "../../src/host/proc.js";
import { waitFor } from "../helpers.js";

const KEY = "sk-operator-supervise-9876";
let dir: string;
let state: string;
let standin: Standin;
const token = mintToken();

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "lz-gw-sup-"));
  state = path.join(dir, "state");
  standin = await startStandin({ key: KEY });
  await mkdir(path.join(dir, "secrets", "so"), { recursive: true });
  await writeFile(path.join(dir, "secrets", "so", "key"), KEY);
  await writeFile(
    path.join(dir, "providers.yaml"),
    `providers:\n  - {name: so, api: openai, baseUrl: "${standin.url}/v1", keyFile: so/key}\n`,
  );
  await mkdir(gatewayCellsDir(state), { recursive: true });
  const portfolio = {
    name: "p",
    appliesTo: { agents: [], taskClasses: [] },
    models: [{ model: "gpt-ok", provider: "so" }],
    retries: { attempts: 0, backoffMs: 0, maxRetryAfterMs: 0 },
    cooldown: { allowedFails: 3, windowMs: 1, durationMs: 1 },
    fallbackOn: [],
  };
  await writeFile(
    path.join(gatewayCellsDir(state), "c.json"),
    JSON.stringify({
      formatVersion: 1,
      cell: "c",
      uid: "c1",
      members: [{ identity: "agent:a", home: "a", tokenDigest: tokenDigest(token), portfolio }],
    }),
  );
});

afterAll(async () => {
  await stopGateway(state);
  await standin?.close();
  await rm(dir, { recursive: true, force: true });
});

const settings = () => ({ providersFile: path.join(dir, "providers.yaml"), secretsDir: path.join(dir, "secrets") });

describe("the gateway process", () => {
  it("starts once, serves, and comes back on the same port after a kill -9", async () => {
    const first = await ensureGateway(state, settings());
    expect((await ensureGateway(state, settings())).pid).toBe(first.pid); // live: reloaded, not started again
    const client = new OpenAI({ apiKey: token, baseURL: `http://127.0.0.1:${first.port}/v1`, maxRetries: 0 });
    expect(
      (await client.chat.completions.create({ model: "gpt-ok", messages: [{ role: "user", content: "hi" }] })).model,
    ).toBe("gpt-ok");
    const environ = await readFile(`/proc/${first.pid}/environ`, "utf8");
    expect(environ).not.toContain(KEY);
    process.kill(first.pid, "SIGKILL");
    await waitFor(() => !isAlive(first.pid, first.startTime)); // by /proc state: Z is dead
    expect(await runningGateway(state)).toBeUndefined();
    const again = await ensureGateway(state, settings());
    expect(again.pid).not.toBe(first.pid);
    expect(again.port).toBe(first.port);
    expect(
      (await client.chat.completions.create({ model: "gpt-ok", messages: [{ role: "user", content: "hi" }] })).model,
    ).toBe("gpt-ok");
  });
});
