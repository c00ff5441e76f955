// Temp files of killed atomic writers and dead takeover guards are swept under the lock.
import { existsSync, mkdirSync, utimesSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { statePaths } from "../../src/cells/layout.js";
import { sweepTempFiles } from "../../src/lock/sweep.js";
import { cellYaml, cleanup, configDir, lazarus, tempDir } from "../helpers.js";

const DEAD = 4_194_303; // above the default pid_max: no process has it
let state: string;
beforeEach(() => {
  state = tempDir("lazarus-state-");
});
afterEach(() => cleanup(state));

const put = (rel: string, text = "", ageS = 0): string => {
  const file = path.join(state, rel);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
  if (ageS) utimesSync(file, new Date(Date.now() - ageS * 1000), new Date(Date.now() - ageS * 1000));
  return file;
};
const guard = (pid: number) =>
  JSON.stringify({
    pid,
    command: "taking over",
    host: hostname(),
    since: "2026-01-01T00:00:00Z",
    token: "00ff00ff00ff00ff",
  });

describe("sweeping what killed writers left", () => {
  it("removes only stale temp files of the writer's exact names, and dead guards", async () => {
    const gone = [
      put(`cells/a/.lazarus/cell.json.${DEAD}.0123456789ab.tmp`, "{"), // writer dead
      put(`ledger.head.json.${process.pid}.0123456789ab.tmp`, "{", 60), // writer alive but long stale
      put("cells/a/.lazarus/cell.json.2768013547", "{", 60), // write-file-atomic's, from before
      put("cells/a/.lazarus/secrets/credentials.json.12345", "", 60), // an empty one
      put("ledger.head.json.4242", "", 60),
      put(`lazarus.lock.${DEAD}.00000000beef.tmp`, "{"),
      put("lazarus.lock.break-deadbeef", guard(DEAD)),
      put(`graveyard/b/.lazarus/cell.json.${DEAD}.ffffffffffff.tmp`),
      put(`tombstones/c.json.${DEAD}.0123456789ab.tmp`, "{"), // a killed tombstone writer
    ];
    const kept = [
      put(`cells/a/.lazarus/cell.json.${process.pid}.0123456789ab.tmp`, "{"), // a live writer, just now
      put("cells/a/.lazarus/cell.json.2768013547x", "", 60),
      put("cells/a/.lazarus/notes.json.12345", "", 60), // not a file the writer replaces
      put("cells/a/.lazarus/cell.json", "{}", 60),
      put(`cells/a/project/cell.json.${DEAD}.0123456789ab.tmp`), // a member's tree: not Lazarus's
      put("cells/a/.lazarus/close.log.777", "", 1), // too young to judge
      put("lazarus.lock.break-cafe", guard(process.pid)), // a live breaker
    ];
    const removed = await sweepTempFiles(statePaths(state));
    expect(removed.sort()).toEqual(gone.sort());
    for (const f of kept) expect(existsSync(f), f).toBe(true);
  });

  it("runs under the lock of every state-changing command (here apply)", async () => {
    const config = configDir({
      "cells.d/a.yaml": cellYaml({ name: "a", members: [{ identity: "human:a", role: "director" }] }),
    });
    try {
      expect((await lazarus(["apply", "--yes", "--config", config, "--state-dir", state])).exitCode).toBe(0);
      const left = [
        put(`cells/a/.lazarus/cell.json.${DEAD}.0123456789ab.tmp`, "{"),
        put("cells/a/.lazarus/secrets/credentials.json.12345", "", 60),
        put(`ledger.head.json.${DEAD}.0123456789ab.tmp`),
      ];
      const r = await lazarus(["apply", "--yes", "--config", config, "--state-dir", state]);
      expect(r.exitCode, r.stderr).toBe(0);
      for (const f of left) expect(existsSync(f), f).toBe(false);
    } finally {
      cleanup(config);
    }
  });
});
