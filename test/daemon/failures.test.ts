// How the daemon retries what failed: a transient failure (here the graveyard is a plain file, so
// the state dir cannot be read: an I/O error that may pass) is retried with a growing backoff,
// well before the old fixed 30 s, and converges by itself once it passes; a terminal one (the
// cell's place in the graveyard is taken: only the operator can move it) is not retried on a timer
// nor at each resync, and is acted on again once something it depends on changes. Real daemon,
// real files.
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { cellYaml, cleanup, configDir, lazarus, startWatching, stopWatches, tempDir, waitFor } from "../helpers.js";
import { everySecond } from "../integration/watched.js";

const made: string[] = [];
afterEach(async () => {
  await stopWatches();
  cleanup(...made.splice(0));
});

// A cell of one human director: no process, so nothing but the close is at stake.
const cell = (name: string, state?: "closed") =>
  cellYaml({ name, ...(state ? { state } : {}), members: [{ identity: "human:h", role: "director" }] });

async function setUp(name: string) {
  const state = tempDir("lazarus-state-");
  const config = configDir({ [`cells.d/${name}.yaml`]: cell(name) });
  made.push(state, config);
  const r = await lazarus(["apply", "--yes", "--config", config, "--state-dir", state]);
  expect(r.exitCode, r.stderr).toBe(0);
  return { state, config, file: path.join(config, "cells.d", `${name}.yaml`) };
}

// When each reconcile failed after the config changed (ms since the epoch), from the daemon's JSON lines.
const failedAfterEdit = (lines: Record<string, unknown>[]): number[] => {
  const from = lines.findIndex((l) => l.msg === "config changed");
  return lines
    .filter((l, i) => from >= 0 && i > from && l.msg === "reconcile failed")
    .map((l) => Date.parse(String(l.time)));
};

// When each failed close of the cell was logged (ms since the epoch), from the daemon's JSON lines.
const failedCloses = (lines: Record<string, unknown>[], name: string): number[] =>
  lines
    .filter((l) => l.cell === name && l.action === "close" && l.msg === "action failed")
    .map((l) => Date.parse(String(l.time)));

describe("the daemon's retries", () => {
  it(
    "retries a transient failure with a growing backoff, and converges once it passes",
    { timeout: 60_000 },
    async () => {
      const { state, config, file } = await setUp("t");
      writeFileSync(path.join(state, "graveyard"), "in the way\n"); // reading the graveyard fails (ENOTDIR)
      const w = await startWatching(everySecond(config, state));
      writeFileSync(file, cell("t", "closed"));
      await waitFor(() => failedAfterEdit(w.lines()).length >= 4, 30_000).catch(() => undefined);
      const at = failedAfterEdit(w.lines());
      expect(at.length, w.logs).toBeGreaterThanOrEqual(4); // within 30 s: 2 s, 4 s, 8 s apart
      const gaps = at.slice(1).map((x, i) => x - (at[i] as number));
      expect(gaps[0]).toBeGreaterThanOrEqual(1_500);
      expect(gaps[1] as number).toBeGreaterThan((gaps[0] as number) * 1.4);
      expect(gaps[2] as number).toBeGreaterThan((gaps[1] as number) * 1.4);
      // It passes (the file is moved away): the next retry closes the cell, with no event.
      rmSync(path.join(state, "graveyard"));
      await waitFor(() => existsSync(path.join(state, "graveyard", "t", ".lazarus", "cell.json")), 30_000);
      expect(existsSync(path.join(state, "cells", "t"))).toBe(false);
    },
  );

  it(
    "leaves a terminal failure alone, even at each resync, until something it depends on changes",
    { timeout: 60_000 },
    async () => {
      const { state, config, file } = await setUp("g");
      const taken = path.join(state, "graveyard", "g");
      mkdirSync(path.dirname(taken), { recursive: true });
      writeFileSync(taken, "the operator's notes\n"); // in the cell's way
      const w = await startWatching([...everySecond(config, state), "--resync", "2s"]);
      writeFileSync(file, cell("g", "closed"));
      await waitFor(() => failedCloses(w.lines(), "g").length >= 1, 15_000);
      expect(w.lines().find((l) => l.cell === "g" && l.msg === "action failed")?.err).toMatch(
        /already exists; move it away/,
      );
      // The close's checkpoint was applied, so the cell changed: it is looked at once more (the close
      // is finished, and fails the same way), then left alone.
      await new Promise((r) => setTimeout(r, 3_000));
      const tries = failedCloses(w.lines(), "g").length;
      expect(tries).toBeLessThanOrEqual(2);
      // 4 resyncs (the 12th, which observes every cell, comes later), and longer than the first backoff steps
      await new Promise((r) => setTimeout(r, 8_000));
      expect(
        failedCloses(w.lines(), "g"),
        w.logs
          .split("\n")
          .filter((l) => !l.includes("reconcile_"))
          .join("\n"),
      ).toHaveLength(tries);
      expect(existsSync(path.join(state, "cells", "g"))).toBe(true);
      // The operator moves their directory away: the graveyard changed, so the next resync closes the cell.
      renameSync(taken, path.join(state, "moved-away"));
      await waitFor(() => existsSync(path.join(state, "graveyard", "g", ".lazarus", "cell.json")), 15_000);
      expect(existsSync(path.join(state, "cells", "g"))).toBe(false);
    },
  );
});
