// A container cell whose containers the engine will not remove at scrub: the container backend's
// releaseCell throws, and the scrub keeps the cell's moved-aside entry (its record), its uid claim
// and its archive, says why, and finishes on a later run once the engine removes them.
// The real engine throughout, except that a container the engine cannot remove cannot be made on
// purpose: a wrapper first on PATH refuses `rm` while a file exists, and runs the real engine
// otherwise. uids from this file's band (uidBand).
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cellYaml, configDir, lazarus, readRecord, tempDir, uidBand } from "../helpers.js";
import { LABEL_CELL_UID } from "../../src/backends/container/argv.js";
import { IMAGE, cleanupContainers, containersOf, engine, skipReason } from "./container-helpers.js";

const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();

describe.skipIf(skipReason)("scrubbing a container cell whose containers survive", () => {
  const state = tempDir("lazarus-ctr-release-");
  const cfg = configDir({});
  const wrap = tempDir("lazarus-engine-wrap-");
  const refuse = path.join(wrap, "refuse-rm");
  const kind = engine.kind as string;
  writeFileSync(
    path.join(wrap, kind),
    `#!/bin/sh\nif [ "$1" = rm ] && [ -e '${refuse}' ]; then echo "Error: refused by the test" >&2; exit 125; fi\nexec '${engine.bin}' "$@"\n`,
  );
  chmodSync(path.join(wrap, kind), 0o755);
  const env = {
    LAZARUS_UID_RANGE: uidBand("backends/container-release").range,
    PATH: `${wrap}:${process.env.PATH ?? "/usr/bin:/bin"}`,
  };
  const run = (now: string, extra: Record<string, string> = {}) =>
    lazarus(["apply", "--yes", "--now", now, "-c", cfg, "-s", state], { env: { ...env, ...extra } });
  let uid = "";
  afterAll(async () => {
    rmSync(refuse, { force: true });
    await cleanupContainers(state, uid ? [uid] : []);
    for (const d of [state, cfg, wrap]) rmSync(d, { recursive: true, force: true });
  });

  it("keeps the entry, its uid and its archive while a container survives, then finishes", async () => {
    writeFileSync(
      path.join(cfg, "cells.d", "keep.yaml"),
      cellYaml({
        name: "keep",
        grace: "1m",
        extra: `  backend: container\n  container: {image: "${IMAGE}"}`,
        members: [{ identity: "agent:w", command: ["sleep", "100000"] }],
      }),
    );
    const created = await run(T(0));
    expect(created.exitCode, created.stdout + created.stderr).toBe(0);
    const rec = readRecord(path.join(state, "cells", "keep"));
    uid = rec.uid;
    const claim = path.join(state, "uids", String(rec.containerUid?.uid));
    expect(existsSync(claim)).toBe(true);
    rmSync(path.join(cfg, "cells.d", "keep.yaml"));
    expect((await run(T(1))).exitCode).toBe(0); // closed into the graveyard
    // A scrub killed once its entry is moved aside; meanwhile a container of the cell is back
    // (as one the engine restarted would be) and the engine refuses to remove it.
    const killed = await run(T(3), { LAZARUS_FAILPOINT: "scrub:moved-aside" });
    expect(killed.signal).toBe("SIGKILL");
    const aside = () =>
      readdirSync(path.join(state, "graveyard")).filter((n) => n === "keep" || n.startsWith(".scrubbing-keep~"));
    expect(aside()).toHaveLength(1);
    const started = spawnSync(
      engine.bin as string,
      [
        "run",
        "-d",
        "--network",
        "none",
        "--pull",
        "never",
        "--label",
        `${LABEL_CELL_UID}=${uid}`,
        IMAGE,
        "sleep",
        "100000",
      ],
      { encoding: "utf8" },
    );
    expect(started.status, started.stderr).toBe(0);
    mkdirSync(wrap, { recursive: true });
    writeFileSync(refuse, "");

    const refused = await run(T(4));
    expect(refused.exitCode).not.toBe(0);
    expect(refused.stdout + refused.stderr).toMatch(
      /cannot release cell keep: containers of it survive \(pids \d+\); nothing was deleted/,
    );
    expect(aside()).toHaveLength(1);
    expect(existsSync(path.join(state, "graveyard", aside()[0] as string, ".lazarus", "cell.json"))).toBe(true);
    expect(existsSync(claim)).toBe(true); // the uid is not handed to another cell while its container lives
    expect(containersOf([uid])).toHaveLength(1);
    const archive = readdirSync(path.join(state, "archive"));
    expect(archive).toHaveLength(1);

    rmSync(refuse);
    const finished = await run(T(5));
    expect(finished.exitCode, finished.stdout + finished.stderr).toBe(0);
    expect(aside()).toEqual([]);
    expect(existsSync(claim)).toBe(false);
    expect(containersOf([uid])).toEqual([]);
    expect(readdirSync(path.join(state, "archive"))).toEqual(archive);
  }, 240_000);
});
