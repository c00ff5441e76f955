// The one-hop bridge with real processes: a sandboxed member (bubblewrap) of an egress cell runs in
// the network namespace of its namespace file, where the egress proxy and the model gateway both
// listen (127.0.0.1:3128 and 127.0.0.1:4000) without any process of Lazarus inside. The gateway is
// the real process (dist/gateway/main.js, started as apply would, ensureGateway), its cell file
// written by the test (apply's gateway wiring is another change), its provider a stand-in server
// the test runs on 127.0.0.1 (no provider is reachable from here). The member calls it with curl.
// Killed with SIGKILL, the gateway leaves the member refused; started again, it opens the door
// again from its cell files. A namespace file whose cell incarnation no record names is removed by
// the next command that recovers the state dir.
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureNetns, memberNetnsFile, netnsInode, removeNetns } from "../../src/bridge/netns.js";
import { waitForDoor } from "../../src/bridge/doors.js";
import { ensureGateway, runningGateway, stopGateway } from "../../src/gateway/supervise.js";
import { gatewayCellsDir, gatewayDoorsFile, mintToken, tokenDigest } from "../../src/gateway/state.js";
import { sandboxSuite, skipReason } from "../sandbox/helpers.js";
import { procState, readRecord, tempDir, waitFor } from "../helpers.js";
import { egressCleanup } from "../egress/helpers.js";
import { startStandin, type Standin } from "../gateway/standin.js";

const KEY = "sk-operator-secret-bridge";
const dir = tempDir("lazarus-bridge-sbx-");

// Every 200 ms: "<http code> <ns>" of a chat completion asked of 127.0.0.1:4000 with its token.
const LOOP = String.raw`
while :; do
  c=$(curl -s --noproxy '*' -o "$HOME/body.txt" -w '%{http_code}' --max-time 5 \
    -H "authorization: Bearer $GW_TOKEN" -H 'content-type: application/json' \
    -d '{"model":"gpt-ok","messages":[{"role":"user","content":"hi"}]}' \
    http://127.0.0.1:4000/v1/chat/completions)
  echo "$c $(date +%s%N)" >> "$HOME/gw.txt"; sleep 0.2
done
`;

describe.skipIf(skipReason !== undefined)("a sandboxed member's network namespace file", () => {
  const suite = sandboxSuite("bridge/sandbox-bridge");
  const { run, cfg, state } = suite;
  const token = mintToken();
  let standin: Standin;
  let netns = "";

  beforeAll(async () => {
    standin = await startStandin({ key: KEY });
    mkdirSync(path.join(dir, "secrets", "so"), { recursive: true });
    writeFileSync(path.join(dir, "secrets", "so", "key"), `${KEY}\n`);
    writeFileSync(
      path.join(dir, "providers.yaml"),
      `providers:\n  - {name: so, api: openai, baseUrl: "${standin.url}/v1", keyFile: so/key}\n`,
    );
    writeFileSync(path.join(cfg, "loop.sh"), LOOP);
  });

  afterAll(async () => {
    await stopGateway(state);
    await egressCleanup(state);
    await standin?.close();
  });

  const lines = (): string[] => {
    const f = path.join(state, "cells", "bridged", "home", "gw", "gw.txt");
    return existsSync(f) ? readFileSync(f, "utf8").trim().split("\n") : [];
  };

  const cellYaml = (extra: boolean): string =>
    [
      "apiVersion: lazarus/v1",
      "kind: Cell",
      "metadata: {name: bridged}",
      "spec:",
      "  project: Org/repo#1",
      "  owner: human:tester",
      "  backend: sandbox",
      "  network: {egress: [example.org]}",
      "  members:",
      `    - {identity: "agent:gw", role: executor, command: ["sh", "${cfg}/loop.sh"], env: {GW_TOKEN: "${token}"}}`,
      ...(extra ? [`    - {identity: "agent:extra", role: executor, command: ["sleep", "600"]}`] : []),
      "",
    ].join("\n");

  it("is made before the member starts; the member runs in it, and no process of Lazarus does", async () => {
    writeFileSync(path.join(cfg, "cells.d", "c.yaml"), cellYaml(true));
    const r = await run("apply", "--yes");
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const rec = readRecord(path.join(state, "cells", "bridged"));
    netns = memberNetnsFile(state, rec.uid, "gw");
    const ino = netnsInode(netns);
    expect(ino).toBeDefined();
    await waitFor(() => lines().length > 0, 30_000);
    expect(lines()[0]).toMatch(/^000 /); // no gateway yet: refused, and no other way out
    // the processes in that namespace (read at once: the loop's curls come and go): the member's
    // only (its uid), none of Lazarus's
    const inside = readdirSync("/proc")
      .filter((p) => /^\d+$/.test(p))
      .flatMap((p) => {
        try {
          if (readlinkSync(`/proc/${p}/ns/net`) !== `net:[${ino}]`) return [];
          const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${p}/status`, "utf8"))?.[1]);
          return [{ uid, cmd: readFileSync(`/proc/${p}/cmdline`, "utf8").replace(/\0/g, " ") }];
        } catch {
          return []; // gone meanwhile
        }
      });
    expect(inside.length).toBeGreaterThan(0);
    for (const p of inside) expect(p.uid, p.cmd).toBe(rec.sandbox?.uid);
  }, 120_000);

  const writeGatewayCell = (): void => {
    const rec = readRecord(path.join(state, "cells", "bridged"));
    mkdirSync(gatewayCellsDir(state), { recursive: true, mode: 0o700 });
    writeFileSync(
      path.join(gatewayCellsDir(state), "bridged.json"),
      JSON.stringify({
        formatVersion: 1,
        cell: "bridged",
        uid: rec.uid,
        members: [
          {
            identity: "agent:gw",
            home: "gw",
            tokenDigest: tokenDigest(token),
            portfolio: {
              name: "p",
              appliesTo: { agents: [], taskClasses: [] },
              models: [{ model: "gpt-ok", provider: "so" }],
              retries: { attempts: 0, backoffMs: 0, maxRetryAfterMs: 1000 },
              cooldown: { allowedFails: 1, windowMs: 60_000, durationMs: 60_000 },
              fallbackOn: ["rate_limit", "timeout", "server_error"],
            },
            netns,
          },
        ],
      }),
    );
  };
  const gatewaySettings = () => ({
    providersFile: path.join(dir, "providers.yaml"),
    secretsDir: path.join(dir, "secrets"),
  });
  const served = async (): Promise<void> => {
    const n = lines().length;
    await waitFor(
      () =>
        lines()
          .slice(n)
          .some((l) => l.startsWith("200 ")),
      30_000,
    ).catch(() => {
      const body = path.join(state, "cells", "bridged", "home", "gw", "body.txt");
      throw new Error(
        `not served: ${lines().slice(-2).join("; ")}: ${existsSync(body) ? readFileSync(body, "utf8") : ""}`,
      );
    });
  };

  it("the model gateway opens its door there on 127.0.0.1:4000, beside the proxy's, and the member's curl is served", async () => {
    writeGatewayCell();
    await ensureGateway(state, gatewaySettings());
    const ino = netnsInode(netns) as number;
    await waitForDoor(gatewayDoorsFile(state), netns, ino, async () => (await runningGateway(state))?.pid, "gateway");
    await served();
    expect(readFileSync(path.join(state, "cells", "bridged", "home", "gw", "body.txt"), "utf8")).toMatch(
      /chat\.completion/,
    );
    expect(standin.seen.at(-1)?.key).toBe(KEY); // the operator's key, never the member's
  }, 120_000);

  it("a gateway killed with SIGKILL leaves the member refused; started again, it opens the door from its cell files", async () => {
    const pid = (await runningGateway(state))?.pid as number;
    process.kill(pid, "SIGKILL");
    await waitFor(() => procState(pid) === undefined || procState(pid) === "Z", 10_000);
    const killedAt = BigInt(Date.now()) * 1_000_000n;
    const n = lines().length;
    await waitFor(() => lines().length >= n + 3, 30_000);
    const during = lines()
      .slice(n)
      .filter((l) => BigInt(l.split(" ")[1] as string) > killedAt);
    expect(during.length).toBeGreaterThan(0);
    expect(during.every((l) => l.startsWith("000 "))).toBe(true);
    await ensureGateway(state, gatewaySettings());
    await served();
  }, 120_000);

  it("a namespace file of an incarnation no record names is removed by the next apply; the member's stays", async () => {
    const leftover = memberNetnsFile(state, "0123456789abcdef", "gone");
    await ensureNetns(leftover);
    expect(netnsInode(leftover)).toBeDefined();
    const r = await run("apply", "--yes");
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(existsSync(leftover)).toBe(false);
    expect(netnsInode(netns)).toBeDefined();
    await removeNetns(leftover);
  }, 120_000);

  it("a removed member's file goes; the others' stay", async () => {
    const uid = readRecord(path.join(state, "cells", "bridged")).uid;
    const extra = memberNetnsFile(state, uid, "extra");
    expect(netnsInode(extra)).toBeDefined();
    writeFileSync(path.join(cfg, "cells.d", "c.yaml"), cellYaml(false));
    const r = await run("apply", "--yes");
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(existsSync(extra)).toBe(false);
    expect(netnsInode(netns)).toBeDefined();
  }, 120_000);

  it("goes with the cell's close", async () => {
    rmSync(path.join(cfg, "cells.d", "c.yaml"));
    const r = await run("apply", "--yes");
    expect(r.stdout + r.stderr).toMatch(/close\s+bridged .* done/);
    expect(existsSync(netns)).toBe(false);
  }, 120_000);
});
