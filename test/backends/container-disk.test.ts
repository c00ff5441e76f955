// Disk quotas of container cells (spec.resources.disk): the member's container binds the cell's
// dirs from its disk image, so writing past the quota gives it ENOSPC and the next apply records
// the event; scrub removes the image, its mounts and its loop device. A real podman (or docker),
// loop devices and mkfs.ext4; uids from this file's band (uidBand).
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cellYaml, configDir, lazarus, readRecord, tempDir, waitFor, uidBand } from "../helpers.js";
import { IMAGE, cleanupContainers, skipReason } from "./container-helpers.js";
import { cleanupDisks, diskSkipReason, imagesUnder, mountsUnder } from "../sandbox/disk-helpers.js";

const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();

describe.skipIf(skipReason ?? diskSkipReason)("disk quotas of container cells", () => {
  const env = { LAZARUS_UID_RANGE: uidBand("backends/container-disk").range };
  const state = tempDir("lazarus-ctr-disk-");
  const cfg = configDir({});
  const run = (...args: string[]) => lazarus([...args, "-c", cfg, "-s", state], { env });
  const uids: string[] = [];
  afterAll(async () => {
    await cleanupContainers(state, uids);
    cleanupDisks(state);
    for (const d of [state, cfg]) rmSync(d, { recursive: true, force: true });
  });

  it("gives a member ENOSPC at its quota, records the event, and scrub leaves no image, mount or loop device", async () => {
    const fill =
      'dd if=/dev/zero of=/cell/project/big bs=1048576 count=64 2>"$HOME/dd.err"; echo $? >"$HOME/dd.rc"; exec sleep 100000';
    const yaml = cellYaml({
      name: "boxed",
      grace: "1m",
      extra: `  backend: container\n  container: {image: "${IMAGE}"}\n  resources: {disk: 32Mi}`,
      members: [{ identity: "agent:w", command: ["sh", "-c", fill] }],
    });
    writeFileSync(path.join(cfg, "cells.d", "boxed.yaml"), yaml);
    const applied = await run("apply", "--yes", "--now", T(0));
    expect(applied.exitCode, applied.stdout + applied.stderr).toBe(0);
    const dir = path.join(state, "cells", "boxed");
    uids.push(readRecord(dir).uid);
    const home = path.join(dir, "home", "w");
    await waitFor(() => existsSync(path.join(home, "dd.rc")), 120_000);
    expect(readFileSync(path.join(home, "dd.rc"), "utf8").trim()).not.toBe("0");
    expect(readFileSync(path.join(home, "dd.err"), "utf8")).toMatch(/No space left on device/);
    const again = await run("apply", "--yes", "--now", T(1));
    expect(again.stdout).toMatch(/disk-full\s+boxed\s+disk quota of 32Mi reached/);
    expect((await run("status", "boxed")).stdout).toMatch(/disk 32Mi: quota reached/);

    rmSync(path.join(cfg, "cells.d", "boxed.yaml"));
    expect((await run("apply", "--yes", "--now", T(2))).exitCode).toBe(0); // closed
    const scrubbed = await run("apply", "--yes", "--now", T(10));
    expect(scrubbed.exitCode, scrubbed.stdout + scrubbed.stderr).toBe(0);
    expect(existsSync(path.join(state, "graveyard", "boxed"))).toBe(false);
    expect(mountsUnder(state)).toEqual([]);
    expect(imagesUnder(state)).toEqual([]);
    expect(
      execFileSync("losetup", ["--list", "--noheadings", "--output", "BACK-FILE"], { encoding: "utf8" }),
    ).not.toContain(state);
  }, 300_000); // the engine's start of a container is slow on a loaded machine
});
