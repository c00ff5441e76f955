// Disk quotas of sandboxed cells (spec.resources.disk): a member writing past its quota gets
// ENOSPC on its own image while Lazarus's files and other cells go on; the event and status say
// so; an image unmounted by hand is mounted again before the member restarts; scrub removes image,
// mounts and loop device, also after a kill -9 at each of its steps. Real bubblewrap, cgroups,
// loop devices and mkfs.ext4; uids from this file's band (uidBand).
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cellYaml, configDir, lazarus, readRecord, waitFor } from "../helpers.js";
import { cgroupPids, cleanupCgroups, sandboxEnv, sandboxStateDir, skipReason } from "./helpers.js";
import { cleanupDisks, diskSkipReason, imagesUnder, loopsOf, mountsUnder } from "./disk-helpers.js";

const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();
const DISK_DIRS = ["project", "shared", "home"];

describe.skipIf(skipReason ?? diskSkipReason)("disk quotas of sandboxed cells", () => {
  const env = sandboxEnv("sandbox/disk-quota");
  const state = sandboxStateDir();
  const cfg = configDir({});
  const run = (...args: string[]) => lazarus([...args, "-c", cfg, "-s", state], { env });
  const live = (n: string) => path.join(state, "cells", n);
  const declare = (name: string, disk: string, command: string[], extra = "") =>
    writeFileSync(
      path.join(cfg, "cells.d", `${name}.yaml`),
      cellYaml({
        name,
        grace: "1m",
        extra: `  backend: sandbox\n  resources: {disk: ${disk}}${extra}`,
        members: [{ identity: "agent:w", command }],
      }),
    );
  afterAll(async () => {
    await cleanupCgroups(env.LAZARUS_CGROUP_ROOT as string);
    cleanupDisks(state);
    for (const d of [state, cfg]) rmSync(d, { recursive: true, force: true });
  });

  // What the host's directory under a bind holds, seen from a mount namespace of our own where
  // the cell's binds are taken away (the host's mounts stay as they are).
  const underBinds = (dir: string): string => {
    const script = `for d in ${DISK_DIRS.map((d) => path.join(dir, d)).join(" ")}; do umount -l "$d"; stat -c '%n %U %a' "$d"; ls -A "$d"; done`;
    return execFileSync("unshare", ["--mount", "--propagation", "private", "sh", "-c", script], { encoding: "utf8" });
  };

  it("gives a member ENOSPC at its quota, says so as an event and in status, while Lazarus's state, checkpoints and another cell go on", async () => {
    const fill =
      'dd if=/dev/zero of=/cell/project/big bs=1M count=64 2>"$HOME/dd.err"; echo $? >"$HOME/dd.rc"; exec sleep 1000';
    declare("full", "32Mi", ["sh", "-c", fill]);
    const applied = await run("apply", "--yes", "--now", T(0));
    expect(applied.exitCode, applied.stdout + applied.stderr).toBe(0);
    const home = path.join(live("full"), "home", "w");
    await waitFor(() => existsSync(path.join(home, "dd.rc")), 20_000);
    expect(readFileSync(path.join(home, "dd.rc"), "utf8").trim()).not.toBe("0");
    expect(readFileSync(path.join(home, "dd.err"), "utf8")).toMatch(/No space left on device/);
    // The bytes went to the cell's image (at most its size on the host), not to the state dir's filesystem.
    const image = path.join(live("full"), ".lazarus", "disk.img");
    expect(statSync(image).blocks * 512).toBeLessThanOrEqual(32 * 1024 ** 2);
    expect(statSync(path.join(live("full"), "project", "big")).size).toBeLessThan(32 * 1024 ** 2);

    // The next apply sees it: an event for the cell, recorded in the ledger; status says it.
    const plan = await run("plan", "--now", T(1));
    expect(plan.stdout).toMatch(/disk-full\s+full\s+disk quota of 32Mi reached: members get ENOSPC/);
    declare("other", "32Mi", ["sh", "-c", 'echo fine > "$HOME/ok"; exec sleep 1000']);
    const again = await run("apply", "--yes", "--now", T(1));
    expect(again.exitCode, again.stdout + again.stderr).toBe(0);
    const events = await lazarus(["events", "full", "-s", state]);
    expect(events.stdout).toMatch(/disk-full.*disk quota of 32Mi reached/);
    const status = await run("status", "full");
    expect(status.stdout).toMatch(/disk 32Mi: quota reached since 2030-01-01T00:01:00\.000Z \(members get ENOSPC\)/);
    const json = JSON.parse((await run("status", "full", "--json")).stdout);
    expect(json.cells[0].disk).toMatchObject({ bytes: 32 * 1024 ** 2, mounted: true, fullSince: T(1) });

    // Lazarus's own files are not on the image: the other cell was created and runs, the ledger
    // appended and verifies, and a checkpoint of the full cell is written (outside its image).
    await waitFor(() => existsSync(path.join(live("other"), "home", "w", "ok")), 20_000);
    const cp = await run("checkpoint", "full", "--now", T(2));
    expect(cp.exitCode, cp.stderr).toBe(0);
    expect(
      readdirSync(path.join(live("full"), ".lazarus", "checkpoints")).some((f) => /\.tar\.(zst|gz)$/.test(f)),
    ).toBe(true);
    expect((await lazarus(["ledger", "verify", "-s", state])).exitCode).toBe(0);
    // A second apply records nothing more; room again is an event too.
    expect((await run("plan", "--now", T(3))).stdout).not.toMatch(/disk-full/);
    rmSync(path.join(live("full"), "project", "big"));
    await waitFor(() => {
      const s = JSON.parse(
        execFileSync("df", ["-B1", "--output=avail", path.join(live("full"), ".lazarus", "disk")], {
          encoding: "utf8",
        }).split("\n")[1] ?? "0",
      );
      return s > 4 * 1024 ** 2;
    });
    expect((await run("apply", "--yes", "--now", T(4))).stdout).toMatch(/disk has room again/);
    expect(readRecord(live("full")).diskFull).toBeUndefined();
  });

  it("refuses a disk above the host's ceiling at its line, and one below the minimum", async () => {
    const other = configDir({});
    try {
      const put = (disk: string) =>
        writeFileSync(
          path.join(other, "cells.d", "big.yaml"),
          cellYaml({
            name: "big",
            extra: `  backend: sandbox\n  resources: {disk: ${disk}}`,
            members: [{ identity: "agent:w", command: ["sleep", "1000"] }],
          }),
        );
      put("2Gi");
      const r = await lazarus(["validate", "-c", other], { env: { ...env, LAZARUS_MAX_DISK: "1Gi" } });
      expect(r.exitCode).not.toBe(0);
      expect(r.stdout + r.stderr).toMatch(
        /cells\.d\/big\.yaml:9:\d+.*disk 2Gi is above this host's ceiling of 1Gi \(LAZARUS_MAX_DISK\)/,
      );
      put("1Mi");
      const small = await lazarus(["validate", "-c", other], { env });
      expect(small.stdout + small.stderr).toMatch(
        /cells\.d\/big\.yaml:9:\d+.*disk 1Mi is smaller than the 16Mi minimum/,
      );
      put("1Gi");
      expect((await lazarus(["validate", "-c", other], { env: { ...env, LAZARUS_MAX_DISK: "1Gi" } })).exitCode).toBe(0);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it("mounts an image unmounted by hand again before the member restarts; nothing is ever written under the binds", async () => {
    declare("boot", "32Mi", ["sh", "-c", "date +%s%N >> /cell/project/starts; exec sleep 1000"]);
    expect((await run("apply", "--yes", "--now", T(10))).exitCode).toBe(0);
    const dir = live("boot");
    await waitFor(() => existsSync(path.join(dir, "project", "starts")), 20_000);
    // As after a reboot: the member gone, the mounts gone.
    const rec = readRecord(dir);
    for (const pid of cgroupPids(rec.sandbox?.cgroup as string)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch (err) {
        // bwrap's pid 1 went first and the kernel ended the rest of its namespace meanwhile
        if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
      }
    }
    await waitFor(() => cgroupPids(rec.sandbox?.cgroup as string).length === 0, 10_000);
    for (const m of mountsUnder(dir)) execFileSync("umount", ["-l", m]);
    await waitFor(() => loopsOf(path.join(dir, ".lazarus", "disk.img")).length === 0, 10_000);
    expect(existsSync(path.join(dir, "project", "starts"))).toBe(false); // the host's empty dir
    const plan = await run("plan", "--now", T(11));
    expect(plan.stdout).toMatch(/update\s+boot\s+disk image of 32Mi not mounted: mounted again before members start/);
    const status = await run("status", "boot");
    expect(status.stdout).toMatch(/disk 32Mi: image not mounted/);
    const applied = await run("apply", "--yes", "--now", T(11));
    expect(applied.exitCode, applied.stdout + applied.stderr).toBe(0);
    // The member restarted on its image: both starts are in the same file.
    await waitFor(
      () =>
        existsSync(path.join(dir, "project", "starts")) &&
        readFileSync(path.join(dir, "project", "starts"), "utf8")
          .trim()
          .split("\n").length === 2,
      20_000,
    );
    // Under the binds the host's dirs are empty, root's and closed.
    const under = underBinds(dir);
    for (const d of DISK_DIRS) expect(under).toContain(`${path.join(dir, d)} root 700`);
    expect(under.split("\n").filter((l) => l && !l.startsWith("/"))).toEqual([]);
    expect((await run("plan", "--detailed-exitcode", "--now", T(12))).exitCode).toBe(0);
  });

  it("grows a quota (the member restarted, its files kept), refuses to shrink it, and gives a cell made without one its image", async () => {
    const sizeOf = (dir: string) =>
      Number(
        execFileSync("df", ["-B1", "--output=size", path.join(dir, ".lazarus", "disk")], { encoding: "utf8" }).split(
          "\n",
        )[1],
      );
    declare("grow", "32Mi", ["sh", "-c", "echo kept > /cell/project/kept; exec sleep 1000"]);
    expect((await run("apply", "--yes", "--now", T(30))).exitCode).toBe(0);
    const dir = live("grow");
    await waitFor(() => existsSync(path.join(dir, "project", "kept")), 20_000);
    const pid = readRecord(dir).members[0]?.pid;
    const before = sizeOf(dir);
    declare("grow", "64Mi", ["sh", "-c", "echo kept > /cell/project/kept; exec sleep 1000"]);
    const plan = await run("plan", "--now", T(31));
    expect(plan.stdout).toMatch(/update\s+grow\s+disk quota 32Mi → 64Mi \(the image grows; members restart\)/);
    const grown = await run("apply", "--yes", "--now", T(31));
    expect(grown.exitCode, grown.stdout + grown.stderr).toBe(0);
    expect(sizeOf(dir)).toBeGreaterThan(before + 24 * 1024 ** 2);
    expect(readRecord(dir).disk).toEqual({ bytes: 64 * 1024 ** 2 });
    expect(readRecord(dir).members[0]?.pid).not.toBe(pid);
    expect(readFileSync(path.join(dir, "project", "kept"), "utf8")).toBe("kept\n");
    expect(existsSync(path.join(dir, ".lazarus", "disk.img.grow"))).toBe(false);
    declare("grow", "32Mi", ["sh", "-c", "echo kept > /cell/project/kept; exec sleep 1000"]);
    const shrink = await run("plan", "--now", T(32));
    expect(shrink.stdout + shrink.stderr).toMatch(/a live cell's disk is never shrunk \(to 32Mi\)/);
    declare("grow", "64Mi", ["sh", "-c", "echo kept > /cell/project/kept; exec sleep 1000"]);

    // A cell made before it had a quota: the update moves its files onto a new image, members restarted.
    writeFileSync(
      path.join(cfg, "cells.d", "old.yaml"),
      cellYaml({
        name: "old",
        extra: "  backend: sandbox",
        members: [{ identity: "agent:w", command: ["sh", "-c", "echo $$ >> /cell/home/w/starts; exec sleep 1000"] }],
      }),
    );
    expect((await run("apply", "--yes", "--now", T(33))).exitCode).toBe(0);
    const old = live("old");
    await waitFor(() => existsSync(path.join(old, "home", "w", "starts")), 20_000);
    writeFileSync(path.join(old, "project", "notes"), "before the quota\n");
    expect(mountsUnder(old)).toEqual([]);
    declare("old", "32Mi", ["sh", "-c", "echo $$ >> /cell/home/w/starts; exec sleep 1000"]);
    const adopt = await run("apply", "--yes", "--now", T(34));
    expect(adopt.stdout, adopt.stderr).toMatch(
      /update\s+old\s+.*disk quota none → 32Mi \(the cell's files move onto its image; members restart\)/,
    );
    expect(mountsUnder(old)).toHaveLength(4);
    expect(readFileSync(path.join(old, "project", "notes"), "utf8")).toBe("before the quota\n");
    await waitFor(
      () =>
        readFileSync(path.join(old, "home", "w", "starts"), "utf8")
          .trim()
          .split("\n").length === 2,
      20_000,
    );
    expect((await run("plan", "--detailed-exitcode", "--now", T(35))).exitCode).toBe(0);
    rmSync(path.join(cfg, "cells.d", "grow.yaml"));
    rmSync(path.join(cfg, "cells.d", "old.yaml"));
  });

  it("warns that backend process cannot enforce a disk quota", async () => {
    const other = configDir({
      "cells.d/p.yaml": cellYaml({
        name: "p",
        extra: "  resources: {disk: 1Gi}",
        members: [{ identity: "agent:w", command: ["sleep", "1"] }],
      }),
    });
    try {
      const r = await lazarus(["validate", "-c", other], { env });
      expect(r.exitCode).toBe(0);
      expect(r.stdout + r.stderr).toMatch(/cells\.d\/p\.yaml:\d+:\d+.*backend process cannot enforce a disk quota/);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it("gives a substitute the checkpoint's project/ and shared/ on the cell's image: staged and swapped there, bound again", async () => {
    const stopFile = "/cell/shared/stop";
    writeFileSync(
      path.join(cfg, "cells.d", "subst.yaml"),
      cellYaml({
        name: "subst",
        extra: "  backend: sandbox\n  resources: {disk: 32Mi}\n  policy: {allowSubstitutes: true}",
        members: [
          {
            identity: "agent:allegro",
            role: "executor",
            command: ["sh", "-c", `while [ ! -e ${stopFile} ]; do sleep 0.2; done; exit 3`],
            restart: "never",
          },
          { identity: "agent:ezra", role: "substitute", command: ["sleep", "1000"], replaces: "agent:allegro" },
        ],
      }),
    );
    expect((await run("apply", "--yes", "--now", T(50))).exitCode).toBe(0);
    const dir = live("subst");
    const uid = readRecord(dir).sandbox?.uid as number;
    const put = (rel: string, text: string) => {
      writeFileSync(path.join(dir, rel), text);
      execFileSync("chown", [`${uid}:${uid}`, path.join(dir, rel)]);
    };
    put("project/work.txt", "checkpointed\n");
    expect((await run("checkpoint", "subst", "--now", T(51))).exitCode).toBe(0);
    put("project/work.txt", "later\n");
    put("shared/stop", "");
    await waitFor(() => cgroupPids(`${readRecord(dir).sandbox?.cgroup}/allegro`).length === 0, 10_000);
    const r = await run("apply", "--yes", "--now", T(52));
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(readFileSync(path.join(dir, "project", "work.txt"), "utf8")).toBe("checkpointed\n");
    expect(existsSync(path.join(dir, "shared", "stop"))).toBe(false);
    // Swapped inside the image, nothing staged left, and the binds show the image's dirs as they are now.
    const root = path.join(dir, ".lazarus", "disk");
    expect(readdirSync(root).filter((e) => e.startsWith(".lazarus-restore-"))).toEqual([]);
    for (const d of DISK_DIRS) expect(statSync(path.join(dir, d)).ino).toBe(statSync(path.join(root, d)).ino);
    expect(mountsUnder(dir)).toHaveLength(4);
    expect(readRecord(dir).members.find((m) => m.identity === "agent:ezra")?.status).toBe("running");
  });

  it.each(
    ["scrub:archived", "disk:unmounted", "disk:detached", "scrub:unmounted"].map((p, i) => [p, 100 + 100 * i] as const),
  )("scrubs image, mounts and loop device, also after a kill -9 at %s", async (point, t) => {
    const name = `gone-${point.replace(/[^a-z]/g, "")}`.slice(0, 30);
    declare(name, "16Mi", ["sleep", "1000"]);
    expect((await run("apply", "--yes", "--now", T(t))).exitCode).toBe(0);
    const image = path.join(live(name), ".lazarus", "disk.img");
    const inode = statSync(image).ino;
    expect(loopsOf(image)).toHaveLength(1);
    rmSync(path.join(cfg, "cells.d", `${name}.yaml`));
    expect((await run("apply", "--yes", "--now", T(t + 1))).exitCode).toBe(0); // closed: into the graveyard, still mounted
    const grave = path.join(state, "graveyard", name);
    expect(mountsUnder(grave).length).toBe(4);
    const killed = await lazarus(["apply", "--yes", "--now", T(t + 10), "-c", cfg, "-s", state], {
      env: { ...env, LAZARUS_FAILPOINT: point },
    });
    expect(killed.signal, killed.stdout + killed.stderr).toBe("SIGKILL");
    const again = await run("apply", "--yes", "--now", T(t + 11));
    expect(again.exitCode, again.stdout + again.stderr).toBe(0);
    expect(existsSync(grave)).toBe(false);
    expect(mountsUnder(state).filter((m) => m.includes(`/${name}/`) || m.endsWith(`/${name}`))).toEqual([]);
    // No loop device is left backed by that (deleted) image.
    const left = execFileSync("losetup", ["--list", "--noheadings", "--output", "NAME,BACK-INO,BACK-FILE"], {
      encoding: "utf8",
    });
    expect(left.split("\n").filter((l) => l.includes(`/${name}/`) && l.includes(` ${inode} `))).toEqual([]);
    expect(imagesUnder(state).filter((i) => i.includes(`/${name}/`))).toEqual([]);
    expect((await lazarus(["ledger", "verify", "-s", state])).exitCode).toBe(0);
  });
});
