// The gateway's stream relay against members that read slowly, leave mid-stream, speak HTTP/1.0 or
// pipeline their requests: raw TCP members (net), so that the chunked body is read byte by byte
// and parsed strictly, and a flooding OpenAI-shaped provider on 127.0.0.1 that honours its own
// socket's backpressure and says when it waits for a drain, how much it wrote and when it is left.
import { once } from "node:events";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import http, { type ServerResponse } from "node:http";
import net, { type Socket } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Gateway } from "../../src/gateway/server.js";
import { gatewayCellsDir, mintToken, tokenDigest, type GatewayCellFile } from "../../src/gateway/state.js";

const KEY = "sk-operator-secret-flood";

// One stream as the provider wrote it.
interface Sent {
  model: string;
  bytes: Buffer[];
  written: number;
  waiting: boolean; // blocked on its socket's drain
  waits: number;
  finished: boolean;
  left: Promise<void>; // the gateway closed the connection before the stream ended
}

// "flood-N": N events of about 1 KB each, as fast as the socket takes them; "endless": events
// until the connection is closed. Every event is distinct (its index), so order shows.
function event(i: number): string {
  const content = `${i}:`.padEnd(1000, String.fromCharCode(97 + (i % 26)));
  const chunk = { id: "c1", object: "chat.completion.chunk", choices: [{ index: 0, delta: { content } }] };
  return `data: ${JSON.stringify(chunk)}\n\n`;
}

async function flood(res: ServerResponse, model: string, sent: Sent[]): Promise<void> {
  let leave!: () => void;
  const s: Sent = {
    model,
    bytes: [],
    written: 0,
    waiting: false,
    waits: 0,
    finished: false,
    left: new Promise((r) => (leave = r)),
  };
  sent.push(s);
  res.on("close", () => {
    if (!res.writableFinished) leave();
  });
  res.writeHead(200, { "content-type": "text/event-stream" });
  const n = model === "endless" ? Infinity : Number(model.slice("flood-".length));
  for (let i = 0; i < n && !res.destroyed; i++) {
    const b = Buffer.from(event(i));
    s.bytes.push(b);
    s.written += b.length;
    if (!res.write(b)) {
      s.waiting = true;
      s.waits++;
      await new Promise<void>((r) => {
        const go = (): void => {
          res.off("drain", go).off("close", go);
          r();
        };
        res.on("drain", go).on("close", go);
      });
      s.waiting = false;
    } else if (model === "endless") await new Promise((r) => setImmediate(r));
  }
  if (res.destroyed) return;
  const done = Buffer.from("data: [DONE]\n\n");
  s.bytes.push(done);
  s.written += done.length;
  res.end(done);
  s.finished = true;
}

let dir: string;
let provider: http.Server;
const sent: Sent[] = [];
let gw: Gateway;
let port: number;
let token: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "lz-relay-push-"));
  const state = path.join(dir, "state");
  await mkdir(path.join(dir, "secrets", "fp"), { recursive: true });
  await writeFile(path.join(dir, "secrets", "fp", "key"), `${KEY}\n`);
  provider = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(parts).toString("utf8")) as { model: string };
      if (req.headers.authorization !== `Bearer ${KEY}`) return void res.writeHead(401).end();
      void flood(res, body.model, sent);
    });
  });
  await new Promise<void>((r) => provider.listen(0, "127.0.0.1", r));
  const upstream = `http://localhost:${(provider.address() as { port: number }).port}/v1`;
  const providers = path.join(dir, "providers.yaml");
  await writeFile(providers, `providers:\n  - {name: fp, api: openai, baseUrl: "${upstream}", keyFile: fp/key}\n`);
  token = mintToken();
  const models = ["flood-400", "flood-16000", "endless"].map((model) => ({ model, provider: "fp" }));
  const cell: GatewayCellFile = {
    formatVersion: 1,
    cell: "push",
    uid: "push-uid",
    members: [
      {
        identity: "agent:coder",
        home: "coder",
        tokenDigest: tokenDigest(token),
        portfolio: {
          name: "flood",
          appliesTo: { agents: [], taskClasses: [] },
          models,
          retries: { attempts: 0, backoffMs: 0, maxRetryAfterMs: 1000 },
          cooldown: { allowedFails: 100, windowMs: 60_000, durationMs: 1 },
          fallbackOn: [],
        },
      },
    ],
  };
  await mkdir(gatewayCellsDir(state), { recursive: true });
  await writeFile(path.join(gatewayCellsDir(state), "push.json"), JSON.stringify(cell));
  gw = new Gateway({
    stateRoot: state,
    host: { secretsDir: path.join(dir, "secrets") },
    env: { LAZARUS_PROVIDERS: providers },
  });
  await gw.reload();
  port = await gw.listen(0, "127.0.0.1");
});

afterAll(async () => {
  await gw?.close();
  provider?.closeAllConnections();
  await new Promise((r) => provider?.close(r));
  await rm(dir, { recursive: true, force: true });
});

function request(model: string, version = "1.1"): string {
  const body = JSON.stringify({ model, stream: true, messages: [{ role: "user", content: "hi" }] });
  return (
    `POST /v1/chat/completions HTTP/${version}\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n` +
    `authorization: Bearer ${token}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

// The responses in what a member read, parsed strictly: a status line, headers, and a body either
// chunked (every size line, every chunk's CRLF, the last chunk checked) or, without
// transfer-encoding, all that is left. Throws on any framing error or a response cut short.
function parseResponses(buf: Buffer): { status: number; headers: Record<string, string>; body: Buffer }[] {
  const out: { status: number; headers: Record<string, string>; body: Buffer }[] = [];
  let at = 0;
  while (at < buf.length) {
    const headEnd = buf.indexOf("\r\n\r\n", at);
    if (headEnd < 0) throw new Error(`a response's head is cut short at byte ${at}`);
    const [statusLine, ...lines] = buf.subarray(at, headEnd).toString("latin1").split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3}) /.exec(statusLine ?? "");
    if (!m) throw new Error(`not a status line: ${statusLine}`);
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf(":");
      headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
    }
    at = headEnd + 4;
    if (headers["transfer-encoding"] !== "chunked") {
      out.push({ status: Number(m[1]), headers, body: buf.subarray(at) });
      break;
    }
    const parts: Buffer[] = [];
    for (;;) {
      const lineEnd = buf.indexOf("\r\n", at);
      if (lineEnd < 0) throw new Error(`a chunk's size line is cut short at byte ${at}`);
      const sizeLine = buf.subarray(at, lineEnd).toString("latin1");
      if (!/^[0-9a-f]+$/i.test(sizeLine)) throw new Error(`not a chunk size: ${JSON.stringify(sizeLine)}`);
      const size = parseInt(sizeLine, 16);
      at = lineEnd + 2;
      if (size === 0) {
        if (buf.subarray(at, at + 2).toString("latin1") !== "\r\n") throw new Error("the last chunk has no CRLF");
        at += 2;
        break;
      }
      if (at + size + 2 > buf.length) throw new Error(`a chunk of ${size} bytes is cut short`);
      parts.push(buf.subarray(at, at + size));
      if (buf.subarray(at + size, at + size + 2).toString("latin1") !== "\r\n") throw new Error("a chunk has no CRLF");
      at += size + 2;
    }
    out.push({ status: Number(m[1]), headers, body: Buffer.concat(parts) });
  }
  return out;
}

// Read a raw connection until `enough` says the responses are all there (or the gateway closes it).
function readAll(sock: Socket, enough: (b: Buffer) => boolean): Promise<Buffer> {
  const parts: Buffer[] = [];
  let total = 0;
  return new Promise((resolve, reject) => {
    const check = (): void => {
      const b = Buffer.concat(parts, total);
      if (enough(b)) {
        sock.off("data", onData);
        resolve(b);
      }
    };
    const onData = (c: Buffer): void => {
      parts.push(c);
      total += c.length;
      if (c.subarray(-5).toString("latin1") === "0\r\n\r\n") check();
    };
    sock.on("data", onData);
    sock.on("end", () => resolve(Buffer.concat(parts, total)));
    sock.on("error", reject);
  });
}

const ended = (count: number) => (b: Buffer) => {
  try {
    return parseResponses(b).length === count;
  } catch {
    return false;
  }
};

const connect = async (): Promise<Socket> => {
  const sock = net.connect(port, "127.0.0.1");
  await once(sock, "connect");
  return sock;
};

const until = async (what: string, cond: () => boolean, ms = 10_000): Promise<void> => {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

// What p gives, or a clear error after ms (a relay that stalls fails here, not at the test's timeout).
function within<T>(what: string, p: Promise<T>, ms = 20_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not within ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

// Until the provider is done with a stream, or has been waiting on one drain with nothing written
// for 30 looks in a row: the gateway holds it back. A gateway that kept reading would let it finish.
async function heldOrDone(s: Sent): Promise<void> {
  let last = -1;
  let still = 0;
  await until("the provider finishes or is held", () => {
    still = s.waiting && s.written === last ? still + 1 : 0;
    last = s.written;
    return s.finished || still >= 30;
  });
}

describe("the gateway's stream relay", () => {
  it("holds the provider back while a member reads slowly, and the member gets every byte in order", async () => {
    const served: Socket[] = [];
    const onConnection = (s: Socket): void => void served.push(s);
    gw.server.on("connection", onConnection);
    const member = await connect();
    try {
      member.pause(); // reads nothing until the provider is held
      const read = readAll(member, ended(1));
      member.write(request("flood-16000"));
      await until("the provider streams", () => sent.some((s) => s.model === "flood-16000"));
      const s = sent.find((x) => x.model === "flood-16000") as Sent;
      await heldOrDone(s);
      const total = Array.from({ length: 16000 }, (_, i) => Buffer.byteLength(event(i))).reduce((a, b) => a + b);
      expect(s.finished).toBe(false);
      expect(s.written).toBeLessThan(total * 0.75); // the rest waits in the kernel's buffers, not in the gateway
      // what the gateway holds for the member in its own memory stays within a few chunks
      expect(served).toHaveLength(1);
      expect(served[0]?.writableLength).toBeLessThan(256 << 10);
      member.resume();
      const [res] = parseResponses(await within("the member reads the whole answer", read));
      expect(res?.status).toBe(200);
      expect(s.finished).toBe(true);
      expect(s.waits).toBeGreaterThan(1);
      expect(res?.body.equals(Buffer.concat(s.bytes))).toBe(true);
    } finally {
      gw.server.off("connection", onConnection);
      member.destroy();
    }
  });

  it("gives up the provider's call when a held-back member leaves mid-stream, and serves the next one", async () => {
    const member = await connect();
    const got: Buffer[] = [];
    member.on("data", (c: Buffer) => got.push(c));
    member.write(request("endless"));
    await until("the member reads some of the stream", () => Buffer.concat(got).length > 64 << 10);
    const s = sent.find((x) => x.model === "endless") as Sent;
    member.pause(); // it stops reading, the gateway holds the provider back, then the member leaves
    await heldOrDone(s);
    expect(s.waiting).toBe(true);
    member.destroy();
    await within("the provider sees its connection closed", s.left, 10_000);
    expect(s.finished).toBe(false);
    const next = await connect();
    try {
      next.write(request("flood-400"));
      const [res] = parseResponses(await within("the next answer", readAll(next, ended(1))));
      expect(res?.status).toBe(200);
      expect(res?.body.equals(Buffer.concat((sent.at(-1) as Sent).bytes))).toBe(true);
    } finally {
      next.destroy();
    }
  });

  it("gives an HTTP/1.0 member its stream whole, closing the connection at its end", async () => {
    const member = await connect();
    try {
      member.write(request("flood-400", "1.0"));
      const [res] = parseResponses(
        await within(
          "the answer",
          readAll(member, () => false),
        ),
      ); // until it closes
      expect(res?.status).toBe(200);
      expect(res?.headers["transfer-encoding"]).toBeUndefined();
      expect(res?.body.equals(Buffer.concat((sent.at(-1) as Sent).bytes))).toBe(true);
    } finally {
      member.destroy();
    }
  });

  it("answers two requests pipelined on one connection, each whole and in order", async () => {
    // The second answer starts streaming while the first still holds the connection (its member
    // reads nothing yet): its pieces must wait their turn, not go onto the connection at once.
    const responses: http.ServerResponse[] = [];
    const onRequest = (_: unknown, res: http.ServerResponse): void => void responses.push(res);
    gw.server.on("request", onRequest);
    const member = await connect();
    try {
      const before = sent.length;
      member.pause();
      const read = readAll(member, ended(2));
      member.write(request("flood-16000") + request("flood-16000"));
      await until("the second answer has begun", () => responses[1]?.headersSent === true);
      await until("both streams have begun", () => sent.length === before + 2);
      const streams = sent.slice(before);
      for (const s of streams) await heldOrDone(s);
      // both held back: the second's pieces wait in its response, within a few chunks, for its turn
      expect(streams.map((s) => s.finished)).toEqual([false, false]);
      expect(responses[1]?.writableLength).toBeLessThan(256 << 10);
      member.resume();
      const got = parseResponses(await within("both answers", read));
      expect(got.map((r) => r.status)).toEqual([200, 200]);
      // the gateway may have called the provider in either order: the same answer both times
      const whole = Buffer.concat(streams[0]?.bytes ?? []);
      expect(Buffer.concat(streams[1]?.bytes ?? []).equals(whole)).toBe(true);
      expect(got[0]?.body.equals(whole)).toBe(true);
      expect(got[1]?.body.equals(whole)).toBe(true);
    } finally {
      gw.server.off("request", onRequest);
      member.destroy();
    }
  });
});
