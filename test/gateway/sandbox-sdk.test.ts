// The model gateway for a sandboxed member, through `lazarus apply` for real: a bubblewrap member
// of a cell with `network: none` runs test/fixtures/gateway-member.mjs with the official `openai`
// package (copied into its home: the sandbox shows no project checkout), configured only by the
// environment Lazarus gives it. It reaches the gateway at 127.0.0.1:4000 inside its own network
// namespace (the bridge: the gateway's door is opened there; no process of Lazarus runs inside),
// and the gateway calls the provider: a stand-in (standin.ts, on 127.0.0.1) because no real
// provider is reachable from this machine. The provider's key stays out of the member's
// environment and the cell's files. The sandbox's uids: its own band (uidBand).
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopGateway } from "../../src/gateway/supervise.js";
import { sandboxSuite, skipReason } from "../sandbox/helpers.js";
import { ROOT, readRecord, tempDir, waitFor } from "../helpers.js";
import { startStandin, type Standin } from "./standin.js";

const KEY = "sk-operator-sandboxed-0123456789";
const MEMBER = path.join(ROOT, "test", "fixtures", "gateway-member.mjs");
const secrets = tempDir("lazarus-gw-sbx-secrets-");

// Waits for its files (the test copies them into its home once the cell is laid out), records its
// environment, then runs the calls.
const WAIT_THEN_RUN = String.raw`
until [ -f "$HOME/m/go" ]; do sleep 0.1; done
env > "$HOME/env.txt"
exec node "$HOME/m/member.mjs" plain,stream
`;

describe.skipIf(skipReason !== undefined)("a sandboxed member calling models through the gateway", () => {
  let standin: Standin;
  const providers = path.join(secrets, "providers.yaml");
  const suite = sandboxSuite("gateway/sandbox-sdk", { LAZARUS_PROVIDERS: providers, LAZARUS_SECRETS_DIR: secrets });
  const { run, cfg, state } = suite;
  const home = path.join(state, "cells", "boxed", "home", "boxed");

  beforeAll(async () => {
    standin = await startStandin({ key: KEY });
    mkdirSync(path.join(secrets, "so"), { recursive: true });
    writeFileSync(path.join(secrets, "so", "key"), `${KEY}\n`);
    writeFileSync(
      providers,
      `providers:\n  - {name: so, api: openai, baseUrl: "${standin.url}/v1", keyFile: so/key}\n`,
    );
    writeFileSync(path.join(cfg, "member.sh"), WAIT_THEN_RUN);
    mkdirSync(path.join(cfg, "portfolios"), { recursive: true });
    writeFileSync(
      path.join(cfg, "portfolios", "boxed.yaml"),
      [
        "apiVersion: lazarus/v1",
        "kind: Portfolio",
        "metadata: {name: boxed}",
        "spec:",
        "  appliesTo: {agents: [boxed]}",
        "  models:",
        "    - {model: gpt-ok, provider: so}",
        "",
      ].join("\n"),
    );
    writeFileSync(
      path.join(cfg, "cells.d", "boxed.yaml"),
      [
        "apiVersion: lazarus/v1",
        "kind: Cell",
        "metadata: {name: boxed}",
        "spec:",
        "  project: Org/repo#1",
        "  owner: human:tester",
        "  backend: sandbox",
        "  network: none",
        "  credentials:",
        "    SO_KEY: {file: so/key}",
        "  members:",
        `    - {identity: "agent:boxed", role: executor, command: ["sh", "${cfg}/member.sh"]}`,
        "",
      ].join("\n"),
    );
  });

  afterAll(async () => {
    rmSync(path.join(cfg, "cells.d", "boxed.yaml"), { force: true });
    await run("apply", "--yes").catch(() => undefined);
    await stopGateway(state);
    await standin?.close();
  });

  it("gets its answers from the provider through 127.0.0.1:4000, with a token and never the key", async () => {
    const applied = await run("apply", "--yes");
    expect(applied.exitCode, applied.stdout + applied.stderr).toBe(0);
    await waitFor(() => existsSync(home), 20_000);
    cpSync(MEMBER, path.join(home, "m", "member.mjs"));
    cpSync(path.join(ROOT, "node_modules", "openai"), path.join(home, "m", "node_modules", "openai"), {
      recursive: true,
    });
    writeFileSync(path.join(home, "m", "go"), "");
    await waitFor(() => existsSync(path.join(home, "calls.json")), 60_000);

    const calls = JSON.parse(readFileSync(path.join(home, "calls.json"), "utf8")) as Record<string, unknown>[];
    expect(calls.map((c) => [c.name, c.ok])).toEqual([
      ["plain", true],
      ["stream", true],
    ]);
    expect(calls[0]).toMatchObject({ served: "gpt-ok" });
    expect(standin.seen.length).toBeGreaterThanOrEqual(2); // the provider answered, with the operator's key
    expect(standin.seen.every((s) => s.key === KEY)).toBe(true);

    const env = Object.fromEntries(
      readFileSync(path.join(home, "env.txt"), "utf8")
        .split("\n")
        .filter((l) => l.includes("="))
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    expect(env.OPENAI_BASE_URL).toBe("http://127.0.0.1:4000/v1");
    expect(env.OPENAI_API_KEY).toMatch(/^lzg-/);
    expect(JSON.stringify(env)).not.toContain(KEY);
    const rec = readRecord(path.join(state, "cells", "boxed"));
    expect(rec.members[0]?.usesGateway).toBe(true);
    const creds = path.join(state, "cells", "boxed", ".lazarus", "secrets", "credentials.json");
    if (existsSync(creds)) expect(readFileSync(creds, "utf8")).not.toContain(KEY);
  }, 180_000);
});
