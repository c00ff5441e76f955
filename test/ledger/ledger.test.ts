import { readFileSync, writeFileSync, appendFileSync } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Ledger, verifyLedger } from "../../src/ledger/ledger.js";
import { cleanup, tempDir } from "../helpers.js";

let dir: string;
let file: string;
let head: string;

beforeEach(async () => {
  dir = tempDir();
  file = path.join(dir, "ledger.jsonl");
  head = path.join(dir, "ledger.head.json");
  const l = new Ledger(file, head);
  for (let i = 1; i <= 4; i++) await l.append({ time: `2026-11-25T00:0${i}:00Z`, cell: `c${i}`, action: "create", reason: "new cell" });
});
afterEach(() => cleanup(dir));

const lines = () => readFileSync(file, "utf8").trimEnd().split("\n");

describe("the ledger", () => {
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
    expect(await verifyLedger(file, head)).toMatchObject({ ok: false, line: 2, problem: expect.stringContaining("was edited") });
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
    expect(await verifyLedger(file, head)).toMatchObject({ ok: false, problem: expect.stringContaining("entries up to seq 4") });
  });

  it("drops a line torn by a crash before appending after it", async () => {
    appendFileSync(file, '{"seq":5,"time":"2026');
    const l = new Ledger(file, head);
    await l.append({ time: "2026-11-25T00:09:00Z", cell: "c5", action: "close", reason: "r" });
    expect(await verifyLedger(file, head)).toEqual({ ok: true, entries: 5 });
  });
});
