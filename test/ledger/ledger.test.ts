import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Ledger, verifyLedger } from "../../src/ledger/ledger.js";
import { execa } from "execa";
import { ROOT, cleanup, lazarus, tempDir } from "../helpers.js";

let dir: string;
let file: string;
let head: string;

beforeEach(async () => {
  dir = tempDir();
  file = path.join(dir, "ledger.jsonl");
  head = path.join(dir, "ledger.head.json");
  const l = new Ledger(file, head);
  for (let i = 1; i <= 4; i++)
    await l.append({ time: `2026-11-25T00:0${i}:00Z`, cell: `c${i}`, action: "create", reason: "new cell" });
});
afterEach(() => cleanup(dir));

const lines = () => readFileSync(file, "utf8").trimEnd().split("\n");

describe("the ledger", () => {
  it("appends a batch in order as one chain that verifies, after single appends", async () => {
    const l = new Ledger(file, head);
    const batch = await l.appendMany(
      [5, 6, 7].map((i) => ({ time: `2026-11-25T00:0${i}:00Z`, cell: `c${i}`, action: "create", reason: "new cell" })),
    );
    expect(batch.map((e) => e.seq)).toEqual([5, 6, 7]);
    await l.append({ time: "2026-11-25T00:08:00Z", cell: "c8", action: "create", reason: "new cell" });
    expect(lines().map((x) => JSON.parse(x).cell)).toEqual(["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"]);
    expect(await verifyLedger(file, head)).toEqual({ ok: true, entries: 8 });
    expect(JSON.parse(readFileSync(head, "utf8")).seq).toBe(8);
  });

  it("verifies an intact chain", async () => {
    expect(await verifyLedger(file, head)).toEqual({ ok: true, entries: 4 });
  });

  it("chains each entry to the hash of the one before", () => {
    const [a, b] = lines().map((l) => JSON.parse(l));
    expect(a.prev).toBe("0".repeat(64));
    expect(b.prev).toBe(a.hash);
  });

  it("names the first edited entry", async () => {
    const l = lines();
    l[1] = l[1]!.replace('"c2"', '"cX"');
    writeFileSync(file, `${l.join("\n")}\n`);
    expect(await verifyLedger(file, head)).toMatchObject({
      ok: false,
      line: 2,
      problem: expect.stringContaining("was edited"),
    });
  });

  it("finds a removed entry", async () => {
    const l = lines();
    l.splice(1, 1);
    writeFileSync(file, `${l.join("\n")}\n`);
    expect(await verifyLedger(file, head)).toMatchObject({ ok: false, line: 2 });
  });

  it("finds reordered entries", async () => {
    const l = lines();
    [l[1], l[2]] = [l[2]!, l[1]!];
    writeFileSync(file, `${l.join("\n")}\n`);
    expect(await verifyLedger(file, head)).toMatchObject({ ok: false, line: 2 });
  });

  it("finds entries removed from the end", async () => {
    const l = lines();
    writeFileSync(file, `${l.slice(0, 2).join("\n")}\n`);
    expect(await verifyLedger(file, head)).toMatchObject({
      ok: false,
      problem: expect.stringContaining("entries up to seq 4"),
    });
  });

  it("drops a line torn by a crash before appending after it", async () => {
    appendFileSync(file, '{"seq":5,"time":"2026');
    const l = new Ledger(file, head);
    await l.append({ time: "2026-11-25T00:09:00Z", cell: "c5", action: "close", reason: "r" });
    expect(await verifyLedger(file, head)).toEqual({ ok: true, entries: 5 });
  });
});

describe("one appender per ledger file", () => {
  it("serializes 200 concurrent appends from one process, through two Ledger objects", async () => {
    const state = path.join(dir, "state");
    mkdirSync(state);
    const f = path.join(state, "ledger.jsonl");
    const h = path.join(state, "ledger.head.json");
    const poller = new Ledger(f, h); // like the daemon's repo poller and a reconcile at once
    const reconcile = new Ledger(f, h);
    const entries = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        (i % 2 ? poller : reconcile).append({
          time: "2026-11-25T00:00:00Z",
          cell: `c${i}`,
          action: "create",
          reason: "new cell",
        }),
      ),
    );
    expect(entries.map((e) => e.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(
      readFileSync(f, "utf8")
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l).seq),
    ).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(await verifyLedger(f, h)).toEqual({ ok: true, entries: 200 });
    const cli = await lazarus(["ledger", "verify", "--state-dir", state]);
    expect(cli.stdout).toContain("Ledger OK: 200 entries");
    expect(cli.exitCode).toBe(0);
  });

  it("follows entries another process appended since this process last wrote", async () => {
    const l = new Ledger(file, head);
    await l.append({ time: "2026-11-25T00:10:00Z", cell: "c5", action: "create", reason: "r" });
    const script = `const { Ledger } = await import(${JSON.stringify(path.join(ROOT, "dist/ledger/ledger.js"))}); await new Ledger(${JSON.stringify(file)}, ${JSON.stringify(head)}).append({ time: "2026-11-25T00:11:00Z", cell: "c6", action: "create", reason: "r" });`;
    await execa(process.execPath, ["--input-type=module", "-e", script]);
    await l.append({ time: "2026-11-25T00:12:00Z", cell: "c7", action: "create", reason: "r" });
    expect(await verifyLedger(file, head)).toEqual({ ok: true, entries: 7 });
  });
});
