// Which outbox entries are worked, and in which order: a pure function of the entries and the time.
import { describe, expect, it } from "vitest";
import { backoffMs, dueEntries } from "../../src/forge/worker.js";
import type { OutboxEntry } from "../../src/forge/outbox.js";

const entry = (kind: "spawn" | "close", over: Partial<OutboxEntry> = {}): OutboxEntry => ({
  cell: "c",
  life: "l1",
  kind,
  project: "Org/repo#1",
  facts: {
    kind: "spawn",
    spawn: {
      cell: "c",
      project: "Org/repo#1",
      life: "l1",
      backend: "process",
      owner: "o",
      createdAt: "t",
      members: [],
    },
  },
  body: kind,
  status: "pending",
  attempts: 0,
  queuedAt: "2030-01-01T00:00:00.000Z",
  updatedAt: "2030-01-01T00:00:00.000Z",
  ...over,
});
const NOW = Date.parse("2030-01-01T00:10:00.000Z");

describe("the outbox's due entries", () => {
  it("an incarnation's spawn comment goes before its close comment (files list close first)", () => {
    expect(dueEntries([entry("close"), entry("spawn")], NOW, false).map((e) => e.kind)).toEqual(["spawn", "close"]);
  });

  it("a close waits while its spawn comment waits to be retried", () => {
    const later = "2030-01-01T00:20:00.000Z";
    expect(dueEntries([entry("close"), entry("spawn", { nextAt: later })], NOW, false)).toEqual([]);
    expect(dueEntries([entry("close"), entry("spawn", { status: "done" })], NOW, false).map((e) => e.kind)).toEqual([
      "close",
    ]);
  });

  it("failed entries only when asked (lazarus publish); backoff doubles and honours Retry-After", () => {
    expect(dueEntries([entry("spawn", { status: "failed" })], NOW, false)).toEqual([]);
    expect(dueEntries([entry("spawn", { status: "failed" })], NOW, true)).toHaveLength(1);
    expect([1, 2, 3, 4].map((n) => backoffMs(n))).toEqual([500, 1000, 2000, 4000]);
    expect(backoffMs(1, 3000)).toBe(3000);
    expect(backoffMs(40)).toBe(600_000);
  });
});
