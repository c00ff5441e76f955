// Entries a killed scrub moved aside (graveyard/.scrubbing-<cell>~<id>) are finished by a later
// apply, last for their name: one that cannot be finished holds nothing else of the name; one whose
// archive is missing is not deleted; one that is a link is never followed. Real CLI, real files.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { AGENT, cellYaml, cleanup, configDir, isAlive, lazarus, readRecord, tempDir } from "../helpers.js";

const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();
const HUMAN = [{ identity: "human:alexander", role: "director" }];

let dirs: string[] = [];
afterEach(() => {
  cleanup(...dirs);
  dirs = [];
});

// A state dir whose graveyard holds .scrubbing-c~1 made from a real cell's tree (its record closed).
async function withAside(): Promise<{ state: string; aside: string; empty: string }> {
  const state = tempDir("lazarus-state-");
  const made = configDir({ "cells.d/c.yaml": cellYaml({ name: "c", members: HUMAN }) });
  const empty = configDir({});
  dirs.push(state, made, empty);
  const r = await lazarus(["apply", "--config", made, "--state-dir", state, "--now", T(0)]);
  expect(r.exitCode, r.stdout + r.stderr).toBe(0);
  const live = path.join(state, "cells", "c");
  const aside = path.join(state, "graveyard", ".scrubbing-c~1");
  mkdirSync(path.dirname(aside), { recursive: true });
  cpSync(live, aside, { recursive: true });
  writeFileSync(
    path.join(aside, ".lazarus", "cell.json"),
    JSON.stringify({ ...readRecord(live), state: "closed", closedAt: T(1) }),
  );
  rmSync(live, { recursive: true });
  return { state, aside, empty };
}

describe("an entry a killed scrub moved aside", () => {
  it("that cannot be finished (unreadable record) holds nothing else of its name: the cell is created beside it", async () => {
    const state = tempDir("lazarus-state-");
    const aside = path.join(state, "graveyard", ".scrubbing-c~1");
    mkdirSync(path.join(aside, ".lazarus"), { recursive: true });
    writeFileSync(path.join(aside, ".lazarus", "cell.json"), "{ not json");
    const config = configDir({
      "cells.d/c.yaml": cellYaml({ name: "c", members: [{ identity: "agent:allegro", command: ["node", AGENT] }] }),
    });
    dirs.push(state, config);

    const r = await lazarus(["apply", "--config", config, "--state-dir", state, "--now", T(0)]);
    expect(r.stdout + r.stderr).toContain("finish interrupted scrub");
    expect(r.stdout + r.stderr).toContain("is not valid JSON");
    const m = readRecord(path.join(state, "cells", "c")).members[0]!;
    try {
      expect(isAlive(m.pid, m.startTime), "the cell was created and its member runs").toBe(true);
      expect(existsSync(path.join(aside, ".lazarus", "cell.json")), "the aside is left as it is").toBe(true);
    } finally {
      if (m.pid) process.kill(-m.pid, "SIGKILL");
    }
  });

  it("is not deleted while its archive is missing", async () => {
    const { state, aside, empty } = await withAside();
    const r = await lazarus(["apply", "--config", empty, "--state-dir", state, "--now", T(60)]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/no archive of cell c \(uid [0-9a-f-]+\) is in .*; nothing was deleted/);
    expect(existsSync(path.join(aside, ".lazarus", "cell.json"))).toBe(true);
    expect(existsSync(path.join(aside, "project"))).toBe(true);
  });

  it("that is a symbolic link is refused, and nothing where it points is deleted", async () => {
    const { state, aside, empty } = await withAside();
    const outside = tempDir("lazarus-outside-");
    dirs.push(outside);
    cpSync(aside, outside, { recursive: true });
    writeFileSync(path.join(outside, "precious"), "keep me");
    rmSync(aside, { recursive: true });
    symlinkSync(outside, aside);
    const r = await lazarus(["apply", "--config", empty, "--state-dir", state, "--now", T(60)]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(
      /\.scrubbing-c~1 in the graveyard \(.*\) is a symbolic link, not a directory; nothing was deleted/,
    );
    expect(readFileSync(path.join(outside, "precious"), "utf8")).toBe("keep me");
    expect(existsSync(path.join(outside, ".lazarus", "cell.json"))).toBe(true);
  });
});
