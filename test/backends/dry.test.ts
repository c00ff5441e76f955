// Backend dry through the real CLI: a cell's whole life (create, idempotent apply, a member
// removed, close with its final checkpoint, scrub) with its members recorded and never run. The
// program it names does not exist: nothing ever tries to start it.
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cellYaml, cleanup, configDir, lazarus, readRecord, tempDir } from "../helpers.js";

const NOWHERE = "/nonexistent/lazarus-dry-agent";
const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();
const state = tempDir("lazarus-state-");
const yaml = (o: { state?: "closed"; ezra?: boolean; grace?: string } = {}) =>
  cellYaml({
    name: "d1",
    ...(o.state ? { state: o.state } : {}),
    ...(o.grace ? { grace: o.grace } : {}),
    extra: "  backend: dry",
    members: [
      { identity: "agent:allegro", command: [NOWHERE, "--serve"] },
      ...(o.ezra === false ? [] : [{ identity: "agent:ezra", command: [NOWHERE] }]),
    ],
  });
const config = configDir({ "cells.d/d1.yaml": yaml() });
afterAll(() => cleanup(state, config));

const run = (...args: string[]) => lazarus([...args, "--config", config, "--state-dir", state]);
const markers = (): string[] => readdirSync(path.join(state, "dry", "d1")).sort();

describe("backend dry", () => {
  it("validates without looking for the members' programs", async () => {
    const r = await run("validate");
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).not.toContain(NOWHERE);
  });

  it("creates the cell and records its members started, running nothing", async () => {
    const p = await run("plan", "--now", T(0));
    expect(p.stdout).toContain("dry: nothing runs");
    const r = await run("apply", "--now", T(0));
    expect(r.exitCode, r.stderr).toBe(0);
    const rec = readRecord(path.join(state, "cells", "d1"));
    expect(rec.backend).toBe("dry");
    expect(rec.members.map((m) => [m.identity, m.status, m.pid, m.handle])).toEqual([
      ["agent:allegro", "running", undefined, `dry/${rec.members[0]?.spawnId}`],
      ["agent:ezra", "running", undefined, `dry/${rec.members[1]?.spawnId}`],
    ]);
    expect(markers()).toEqual(rec.members.map((m) => m.spawnId).sort());
    expect(existsSync(path.join(state, "cells", "d1", ".lazarus", "logs", "allegro.exit"))).toBe(false);
  });

  it("plans nothing after apply, and says where the cell runs", async () => {
    expect((await run("plan", "--detailed-exitcode", "--now", T(1))).exitCode).toBe(0);
    const s = JSON.parse((await run("status", "--json", "--now", T(1))).stdout) as {
      cells: { name: string; backend: string; members: { status: string }[] }[];
    };
    expect(s.cells.find((c) => c.name === "d1")).toMatchObject({
      backend: "dry",
      members: [{ status: "running" }, { status: "running" }],
    });
  });

  it("stops a removed member (its marker goes)", async () => {
    writeFileSync(path.join(config, "cells.d", "d1.yaml"), yaml({ ezra: false }));
    const r = await run("apply", "--now", T(2));
    expect(r.exitCode, r.stderr).toBe(0);
    const rec = readRecord(path.join(state, "cells", "d1"));
    expect(rec.members.map((m) => m.identity)).toEqual(["agent:allegro"]);
    expect(markers()).toEqual([rec.members[0]?.spawnId]);
  });

  it("closes with a final checkpoint, then scrubs, leaving no marker", async () => {
    writeFileSync(path.join(config, "cells.d", "d1.yaml"), yaml({ ezra: false, state: "closed", grace: "0s" }));
    const r = await run("apply", "--now", T(3));
    expect(r.exitCode, r.stderr).toBe(0);
    expect(existsSync(path.join(state, "cells", "d1"))).toBe(false);
    expect(existsSync(path.join(state, "dry", "d1"))).toBe(false);
    const ledger = readFileSync(path.join(state, "ledger.jsonl"), "utf8");
    expect(ledger).toMatch(/"checkpoint"/);
    expect(ledger).toMatch(/"scrub"/);
  });
});
