// The model gateway attacked as a hostile member would: its token where the gateway does not read
// one, headers meant for the provider, model names and paths that try to reach other provider
// APIs, bodies too large or too slow, concurrent spending, and a provider (stand-in) whose usage
// report lies. Raw HTTP requests against a real gateway on 127.0.0.1 and a stand-in provider.
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { execFile } from "node:child_process";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Gateway } from "../../src/gateway/server.js";
import {
  GATEWAY_MEMBER_PORT,
  gatewayCellsDir,
  tokenDigest,
  usageDir,
  type GatewayCellFile,
  type PortfolioDoc,
} from "../../src/gateway/state.js";
import { writeGatewayCell } from "./cell-file.js";
import { OPERATOR_HEADERS, startStandin, type Standin } from "./standin.js";
import { floodDoor, netnsSkipReason } from "../egress/helpers.js";
import { DOOR_MAX_CONNECTIONS } from "../../src/bridge/doors.js";
import { ensureNetns, memberNetnsFile, removeNetns } from "../../src/bridge/netns.js";

const KEY = "sk-operator-secret-0123456789";
const MAX_BODY = 64 << 10;
let dir: string;
let state: string;
let secrets: string;
let providers: string;
let standin: Standin;
let gw: Gateway;
let port: number;
const tokens = new Map<string, string>();

function portfolio(name: string, models: [string, string][]): PortfolioDoc {
  return {
    name,
    appliesTo: { agents: [], taskClasses: [] },
    models: models.map(([model, provider]) => ({ model, provider })),
    retries: { attempts: 0, backoffMs: 0, maxRetryAfterMs: 1000 },
    cooldown: { allowedFails: 1, windowMs: 60_000, durationMs: 60_000 },
    fallbackOn: ["rate_limit", "timeout", "server_error"],
  };
}

// The gateway's file for a cell of these members (tokens kept in tokens, see cell-file.ts).
function writeCell(
  cell: string,
  members: string[],
  portfolio: PortfolioDoc,
  extra: Partial<GatewayCellFile> = {},
  netnsOf: Record<string, string> = {},
): Promise<void> {
  return writeGatewayCell({ state, tokens, cell, members, portfolio, extra, netnsOf });
}

const newGateway = async (): Promise<Gateway> => {
  const g = new Gateway({
    stateRoot: state,
    host: { secretsDir: secrets },
    env: { LAZARUS_PROVIDERS: providers },
    maxBodyBytes: MAX_BODY,
  });
  await g.reload();
  return g;
};

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "lz-gateway-attack-"));
  state = path.join(dir, "state");
  secrets = path.join(dir, "secrets");
  await mkdir(path.join(secrets, "so"), { recursive: true });
  await writeFile(path.join(secrets, "so", "key"), `${KEY}\n`);
  standin = await startStandin({ key: KEY });
  providers = path.join(dir, "providers.yaml");
  await writeFile(
    providers,
    `providers:\n  - {name: so, api: openai, baseUrl: "${standin.url}/v1", keyFile: so/key}\n`,
  );
  await writeCell("alpha", ["coder"], portfolio("fast", [["gpt-ok", "so"]]));
  await writeCell("beta", ["one", "two"], portfolio("cheap", [["gpt-ok", "so"]]), {
    budget: { tokens: 20, periodMs: 3600_000 },
  });
  await writeCell("liar", ["coder"], portfolio("liar", [["liar-huge-gpt", "so"]]), {
    budget: { cost: 1000, periodMs: 3600_000 },
    prices: { "liar-huge-gpt": { input: 1_000_000, output: 1_000_000 } },
  });
  await writeCell("neg", ["coder"], portfolio("neg", [["liar-negative-gpt", "so"]]), {
    budget: { tokens: 1, periodMs: 3600_000 },
  });
  gw = await newGateway();
  port = await gw.listen(0, "127.0.0.1");
});

afterAll(async () => {
  await gw?.close();
  await standin?.close();
  await rm(dir, { recursive: true, force: true });
});

interface Reply {
  status: number;
  body: string;
}

const CHAT = JSON.stringify({ model: "gpt-ok", messages: [{ role: "user", content: "hi" }] });

// One raw request to the gateway (the path and headers exactly as given).
function call(
  opts: { method?: string; path?: string; headers?: Record<string, string>; body?: string | Buffer },
  to = port,
): Promise<Reply> {
  const body = opts.body ?? (opts.method === "GET" ? undefined : CHAT);
  const length: Record<string, string> =
    body === undefined ? {} : { "content-length": String(Buffer.byteLength(body)) };
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port: to,
        method: opts.method ?? "POST",
        path: opts.path ?? "/v1/chat/completions",
        headers: { "content-type": "application/json", ...length, ...opts.headers },
        agent: false,
      },
      (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
const bearer = (who: string): Record<string, string> => ({ authorization: `Bearer ${tokens.get(who)}` });

describe("a token where the gateway does not read one", () => {
  const t = (): string => tokens.get("alpha/coder") as string;
  it.each([
    ["in the query", () => ({ path: `/v1/chat/completions?api_key=${t()}&key=${t()}` })],
    ["in a cookie", () => ({ headers: { cookie: `token=${t()}` } })],
    ["as Proxy-Authorization", () => ({ headers: { "proxy-authorization": `Bearer ${t()}` } })],
    [
      "as Basic credentials",
      () => ({ headers: { authorization: `Basic ${Buffer.from(`x:${t()}`).toString("base64")}` } }),
    ],
    ["after the Bearer with more words", () => ({ headers: { authorization: `Bearer ${t()} extra` } })],
    ["as the provider's own key", () => ({ headers: { authorization: `Bearer ${KEY}` } })],
    ["a digest of a token, not the token", () => ({ headers: { "x-api-key": tokenDigest(t()) } })],
  ])("is refused %s with 401, and nothing reaches the provider", async (_what, req) => {
    const n = standin.seen.length;
    const r = await call(req());
    expect(r.status).toBe(401);
    expect(standin.seen.length).toBe(n);
  });
});

describe("headers meant for the provider", () => {
  it("reach it only as the gateway's short list: never the member's credentials, host or forwarding headers", async () => {
    const n = standin.seen.length;
    const r = await call({
      path: "/v1/chat/completions?beta=true&model=gpt-evil",
      headers: {
        ...bearer("alpha/coder"),
        "x-api-key": "sk-member-chose-this",
        "anthropic-dangerous-direct-browser-access": "true",
        "openai-organization": "org-evil",
        "openai-project": "proj-evil",
        cookie: "session=evil",
        "x-forwarded-for": "203.0.113.9",
        "x-forwarded-host": "evil.test",
        forwarded: "host=evil.test",
        "proxy-authorization": "Basic eDp5",
        "accept-encoding": "gzip",
        connection: "keep-alive, x-hop",
        "x-hop": "1",
        host: "evil.test",
        "user-agent": "member-agent/1",
      },
    });
    expect(r.status).toBe(200);
    const seen = standin.seen.slice(n);
    expect(seen).toHaveLength(1);
    const h = seen[0]?.headers ?? {};
    expect(seen[0]?.url).toBe("/v1/chat/completions");
    expect(seen[0]?.key).toBe(KEY);
    expect(h.host).toBe(new URL(standin.url).host);
    expect(h["accept-encoding"]).toBe("identity");
    expect(h["user-agent"]).toBe("member-agent/1");
    for (const k of [
      "x-api-key",
      "anthropic-dangerous-direct-browser-access",
      "openai-organization",
      "openai-project",
      "cookie",
      "x-forwarded-for",
      "x-forwarded-host",
      "forwarded",
      "proxy-authorization",
      "x-hop",
    ])
      expect([k, h[k]]).toEqual([k, undefined]);
    expect(JSON.stringify(seen[0])).not.toContain(tokens.get("alpha/coder"));
  });
});

describe("what the provider answers", () => {
  it.each([false, true])("reaches the member without the operator's account headers (stream: %s)", async (stream) => {
    const got = await new Promise<http.IncomingHttpHeaders>((resolve, reject) => {
      const body = JSON.stringify({ model: "gpt-ok", stream, messages: [{ role: "user", content: "hi" }] });
      const req = http.request(
        {
          host: "127.0.0.1",
          port,
          method: "POST",
          path: "/v1/chat/completions",
          headers: { ...bearer("alpha/coder"), "content-type": "application/json" },
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.headers));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
    expect(got["x-lazarus-model"]).toBe("gpt-ok");
    for (const k of Object.keys(OPERATOR_HEADERS)) expect([k, got[k]]).toEqual([k, undefined]);
  });
});

describe("model names and paths that try to reach other provider APIs", () => {
  it.each([
    "../gpt-ok",
    "gpt-ok/../../files",
    "../../v1/files",
    "gpt-ok?x=1",
    "GPT-OK",
    " gpt-ok",
    "gpt-ok\u0000",
    "gpt-ok%2F..%2Ffiles",
  ])("refuses the model %j with 404, and nothing reaches the provider", async (model) => {
    const n = standin.seen.length;
    const r = await call({ headers: bearer("alpha/coder"), body: JSON.stringify({ model, messages: [] }) });
    expect(r.status).toBe(404);
    expect(standin.seen.length).toBe(n);
  });

  it.each([
    ["a model that is not a string", JSON.stringify({ model: ["gpt-ok"], messages: [] })],
    ["a body that is an array", JSON.stringify([{ model: "gpt-ok" }])],
    ["a body that is not JSON", "model=gpt-ok"],
  ])("refuses %s with 400, and nothing reaches the provider", async (_what, body) => {
    const n = standin.seen.length;
    const r = await call({ headers: bearer("alpha/coder"), body });
    expect(r.status).toBe(400);
    expect(standin.seen.length).toBe(n);
  });

  it.each([
    ["POST", "/v1/files"],
    ["POST", "/v1/embeddings"],
    ["POST", "/v1/completions"],
    ["POST", "/v1/responses"],
    ["POST", "/v1/messages/batches"],
    ["POST", "/v1/messages/count_tokens"],
    ["POST", "/v1/chat/completions/../../files"],
    ["POST", "/v1/chat/completions/"],
    ["POST", "//v1/chat/completions"],
    ["POST", "/V1/chat/completions"],
    ["POST", "/v1/chat/completions%2F..%2Ffiles"],
    ["POST", "/v1/chat/completions;x"],
    ["PUT", "/v1/chat/completions"],
    ["DELETE", "/v1/models"],
    ["GET", "/v1/models/../files"],
    ["GET", "/v1/files"],
  ])("answers %s %s with 404, reaching nothing", async (method, p) => {
    const n = standin.seen.length;
    const r = await call({ method, path: p, headers: bearer("alpha/coder") });
    expect(r.status).toBe(404);
    expect(standin.seen.length).toBe(n);
  });
});

describe("bodies too large or too slow", () => {
  it("refuses a body over the gateway's limit with 413, before reading more of it, and sends nothing on", async () => {
    const n = standin.seen.length;
    const r = await call({
      headers: bearer("alpha/coder"),
      body: JSON.stringify({ model: "gpt-ok", messages: [{ role: "user", content: "x".repeat(MAX_BODY) }] }),
    });
    expect(r.status).toBe(413);
    expect(standin.seen.length).toBe(n);
  });

  it.each([
    ["a body past the limit", "/v1/chat/completions", "alpha/coder", 413],
    ["a made-up token", "/v1/chat/completions", "nobody", 401],
    ["a path it does not serve", "/v1/files", "alpha/coder", 404],
  ])("closes the connection at %s, rather than reading a 1 GiB body to its end", async (_what, p, who, status) => {
    // a member announcing a 1 GiB body and writing as fast as it can
    const s = net.connect(port, "127.0.0.1");
    await new Promise((r) => s.once("connect", r));
    s.write(
      `POST ${p} HTTP/1.1\r\nHost: x\r\nauthorization: Bearer ${tokens.get(who) ?? "lzg-made-up"}\r\n` +
        `content-type: application/json\r\ncontent-length: ${1 << 30}\r\n\r\n`,
    );
    let reply = "";
    let sent = 0;
    let closed = false;
    s.on("data", (d: Buffer) => (reply += d.toString()));
    s.on("error", () => undefined);
    s.on("close", () => (closed = true));
    const chunk = Buffer.alloc(64 << 10, 32);
    while (!closed && sent < 256 << 20) {
      if (!s.write(chunk)) await new Promise((r) => setTimeout(r, 5));
      sent += chunk.length;
    }
    s.destroy();
    expect(reply).toMatch(new RegExp(`^HTTP/1.1 ${status} `));
    expect(closed).toBe(true);
    expect(sent).toBeLessThan(64 << 20);
  });

  it("serves another cell while one member holds many slow, unfinished bodies", async () => {
    const held: net.Socket[] = [];
    try {
      for (let i = 0; i < 50; i++) {
        const s = net.connect(port, "127.0.0.1");
        s.on("error", () => undefined);
        s.write(
          `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nauthorization: Bearer ${tokens.get("neg/coder")}\r\n` +
            `content-length: 1000\r\n\r\n{"model":`,
        );
        held.push(s);
      }
      await new Promise((r) => setTimeout(r, 100));
      const r = await call({ headers: bearer("alpha/coder") });
      expect(r.status).toBe(200);
    } finally {
      for (const s of held) s.destroy();
    }
  });
});

describe("spending", () => {
  it("checks a budget when a call starts: two members' calls under way together both finish, the next is refused", async () => {
    const [a, b] = await Promise.all([call({ headers: bearer("beta/one") }), call({ headers: bearer("beta/two") })]);
    expect([a.status, b.status]).toEqual([200, 200]); // 30 of 20 tokens: both began under budget
    const c = await call({ headers: bearer("beta/one") });
    expect(c.status).toBe(429);
    expect(c.body).toMatch(/30 of 20 tokens/);
  });

  it("counts a negative usage report as nothing, never as spending given back", async () => {
    const body = JSON.stringify({ model: "liar-negative-gpt", messages: [] });
    expect((await call({ headers: bearer("neg/coder"), body })).status).toBe(200);
    const lines = (await readFile(path.join(usageDir(state), "neg.jsonl"), "utf8")).trim().split("\n");
    expect(JSON.parse(lines.at(-1) as string)).toMatchObject({ input: 0, output: 0, cost: 0 });
  });

  it("keeps a huge usage report's cost counted, in the usage file and after a restart", async () => {
    const body = JSON.stringify({ model: "liar-huge-gpt", messages: [] });
    expect((await call({ headers: bearer("liar/coder"), body })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 50));
    const line = JSON.parse(
      (await readFile(path.join(usageDir(state), "liar.jsonl"), "utf8")).trim().split("\n").at(-1) as string,
    ) as { cost: unknown };
    expect(typeof line.cost).toBe("number");
    expect((await call({ headers: bearer("liar/coder"), body })).status).toBe(429);
    // a restarted gateway reads the cell's spending back from the usage file
    const again = await newGateway();
    try {
      const p = await again.listen(0, "127.0.0.1");
      const r = await call({ headers: bearer("liar/coder"), body }, p);
      expect(r.status).toBe(429);
    } finally {
      await again.close();
    }
  });
});

describe.skipIf(netnsSkipReason() !== undefined)("a member flooding its own door", () => {
  it("holds at most its cap of connections there; a teammate's call is still served at its door", async () => {
    const files = ["one", "two"].map((m) => memberNetnsFile(state, "door-uid", m));
    for (const f of files) await ensureNetns(f);
    try {
      await writeCell(
        "door",
        ["one", "two"],
        portfolio("door", [["gpt-ok", "so"]]),
        {},
        {
          one: files[0] as string,
          two: files[1] as string,
        },
      );
      await gw.reload();
      const flood = await floodDoor(files[0] as string, GATEWAY_MEMBER_PORT, DOOR_MAX_CONNECTIONS + 40);
      try {
        expect(flood.result).toEqual({ open: DOOR_MAX_CONNECTIONS + 40, closed: 40 });
        const r = await promisify(execFile)("nsenter", [
          `--net=${files[1]}`,
          "--",
          "curl",
          "-sS",
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          "-H",
          `authorization: Bearer ${tokens.get("door/two")}`,
          "-H",
          "content-type: application/json",
          "-d",
          CHAT,
          `http://127.0.0.1:${GATEWAY_MEMBER_PORT}/v1/chat/completions`,
        ]);
        expect(r.stdout).toBe("200");
      } finally {
        flood.stop();
      }
    } finally {
      await rm(path.join(gatewayCellsDir(state), "door.json"), { force: true });
      await gw.reload();
      for (const f of files) await removeNetns(f);
    }
  });
});
