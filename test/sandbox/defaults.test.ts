// The operator's defaults reach a sandboxed member that declares no resources: the memory and
// pid limits of its cgroup are the host's defaults (LAZARUS_DEFAULT_MEMORY, LAZARUS_DEFAULT_PIDS),
// its private /tmp and /dev/shm are each bounded by half that memory limit, and what it writes to /tmp is
// charged to its memory cgroup. uids from its own band (uidBand).
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { detectCgroups } from "../../src/backends/sandbox/cgroup.js";
import { cellYaml, configDir, readRecord, waitFor } from "../helpers.js";
import { sandboxSuite, skipReason } from "./helpers.js";

const MiB = 1024 * 1024;
const cgroups = skipReason ? undefined : detectCgroups();
if (!skipReason && !cgroups) console.warn("SKIPPED: sandbox defaults: no cgroups here");

// A cgroup file of the member's group, v1 (per controller) or v2 (one tree).
function cgroupFile(group: string, controller: "memory" | "pids", v1: string, v2: string): string {
  if (cgroups?.kind === "v2") return readFileSync(path.join(cgroups.root, group, v2), "utf8").trim();
  return readFileSync(path.join("/sys/fs/cgroup", controller, group, v1), "utf8").trim();
}

describe.skipIf(skipReason || !cgroups)("a sandboxed member without resources", () => {
  const { state, cfg, run } = sandboxSuite("sandbox/defaults", {
    LAZARUS_DEFAULT_MEMORY: "96Mi",
    LAZARUS_DEFAULT_PIDS: "200",
  });

  it("gets the host's default memory and pid limits, and a /tmp and /dev/shm that fill up (ENOSPC) within that memory", async () => {
    const script =
      "df -kP /tmp /dev/shm; head -c 20971520 /dev/zero > /tmp/fill && echo wrote-20M; head -c 209715200 /dev/zero > /dev/shm/big; echo shm-exit=$?; sleep 1000";
    configDir(
      {
        "cells.d/def.yaml": cellYaml({
          name: "def",
          extra: "  backend: sandbox",
          members: [{ identity: "agent:def", command: ["sh", "-c", script], restart: "never" }],
        }),
      },
      cfg,
    );
    const applied = await run("apply", "--yes");
    expect(applied.exitCode, applied.stderr + applied.stdout).toBe(0);
    const rec = readRecord(path.join(state, "cells", "def"));
    const group = `${rec.sandbox?.cgroup}/def`;
    expect(Number(cgroupFile(group, "memory", "memory.limit_in_bytes", "memory.max"))).toBe(96 * MiB);
    expect(cgroupFile(group, "pids", "pids.max", "pids.max")).toBe("200");
    const log = path.join(state, "cells", "def", ".lazarus", "logs", "def.log");
    const exitFile = path.join(state, "cells", "def", ".lazarus", "logs", "def.exit");
    const done = (): boolean =>
      /shm-exit=/.test(readFileSync(log, "utf8")) ||
      readFileSync(exitFile, { encoding: "utf8", flag: "a+" }).length > 0;
    await waitFor(done, 20_000);
    const text = readFileSync(log, "utf8");
    // df -kP: "tmpfs <1K-blocks> <used> <available> <use%> <mounted on>"
    const sizeOf = (mount: string): number =>
      Number(new RegExp(`\\stmpfs\\s+(\\d+)\\s+\\d+\\s+\\d+\\s+\\d+%\\s+${mount}$`, "m").exec(text)?.[1]);
    // each is half the memory limit: together they cannot take more than the member may have
    expect(sizeOf("/tmp"), text).toBe(48 * 1024);
    expect(sizeOf("/dev/shm"), text).toBe(48 * 1024);
    expect(text).toContain("wrote-20M");
    // 200M into /dev/shm stops at its bound with ENOSPC, and the member lives on
    expect(text).toContain("No space left on device");
    expect(text).toMatch(/shm-exit=[1-9]/);
    expect(readFileSync(exitFile, { encoding: "utf8", flag: "a+" })).toBe("");
    // what the member wrote to its tmpfs is charged to its memory cgroup (shmem), on v1 as on v2
    const stat = cgroupFile(group, "memory", "memory.stat", "memory.stat");
    const shmem = Number(/^(?:total_)?shmem (\d+)$/m.exec(stat)?.[1]);
    expect(shmem, stat).toBeGreaterThanOrEqual(60 * MiB);
    console.log(
      `measured: ${cgroups?.kind} member cgroup shmem after 20M in /tmp and /dev/shm filled (48Mi): ${(shmem / MiB).toFixed(1)} MiB`,
    );
  });
});
