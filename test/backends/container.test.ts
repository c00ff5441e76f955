// The backend contract, checked for the container backend (podman or docker, whichever the host
// has; skipped with the reason when its engine cannot run a container here).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cellYaml, configDir, isAlive, lazarus, readRecord, tempDir, waitFor, uidBand } from "../helpers.js";
import { backendConformance } from "./conformance.js";
import { IMAGE, cleanupContainers, containersOf, engine, skipReason } from "./container-helpers.js";

// Every cell incarnation a state dir has seen, from its ledger (records are gone after scrub).
function ledgerUids(state: string): string[] {
  const out = new Set<string>();
  const file = path.join(state, "ledger.jsonl");
  if (!existsSync(file)) return [];
  for (const m of readFileSync(file, "utf8").matchAll(/"uid":"([0-9a-f]{8,})"/g)) out.add(m[1] as string);
  return [...out];
}

backendConformance({
  backend: "container",
  env: { LAZARUS_UID_RANGE: uidBand("backends/container-conformance").range },
  extra: `  container: {image: "${IMAGE}"}`,
  // podman with runc on cgroup v1 reports OOMKilled false: the member is seen SIGKILLed
  memory: "killed",
  skip: skipReason,
  leftovers: async (state) => containersOf(ledgerUids(state)),
  cleanup: async (state) => cleanupContainers(state, ledgerUids(state)),
});

// What only the container backend shows: the view by role, the network, the labels, and what
// validate says of a missing image or engine.
describe.skipIf(skipReason)("container cells", () => {
  const band = uidBand("backends/container");
  const env = { LAZARUS_UID_RANGE: band.range };
  const state = tempDir("lazarus-ctr-");
  const cfg = configDir({});
  const run = (...args: string[]) => lazarus([...args, "-c", cfg, "-s", state], { env });
  afterAll(async () => {
    await cleanupContainers(state, ledgerUids(state));
    for (const d of [state, cfg]) rmSync(d, { recursive: true, force: true });
  });

  // Each member writes what it can reach to its own home, then sleeps.
  const probe = [
    "sh",
    "-c",
    [
      "r=uid:$(id -u)",
      'if touch /cell/project/.w-$$ 2>/dev/null; then r="$r project:rw"; else r="$r project:ro"; fi',
      'if [ ! -d /cell/shared ]; then r="$r shared:none"; elif touch /cell/shared/.w-$$ 2>/dev/null; then r="$r shared:rw"; else r="$r shared:ro"; fi',
      'r="$r homes:$(ls /cell/home | tr "\\n" ",")"',
      'if [ -e /run/lazarus/secrets/credentials.json ]; then r="$r creds:yes"; else r="$r creds:no"; fi',
      'r="$r net:$(ls /sys/class/net | tr "\\n" ",")"',
      'case "$(awk \'$2 == "/" {print $4}\' /proc/mounts | tail -n 1)" in ro,*) r="$r rootfs:ro" ;; *) r="$r rootfs:rw" ;; esac',
      'echo "$r" > "$HOME/probe.txt"',
      "exec sleep 100000",
    ].join("; "),
  ];

  it("binds the cell in by role, as the cell's uid, with no network and a read-only image", async () => {
    writeFileSync(
      path.join(cfg, "cells.d", "roles.yaml"),
      cellYaml({
        name: "roles",
        extra: `  backend: container\n  container: {image: "${IMAGE}"}\n  policy: {allowGuests: true}`,
        members: [
          { identity: "agent:exec", role: "executor", command: probe },
          { identity: "agent:obs", role: "observer", command: probe },
          { identity: "agent:gst", role: "guest", command: probe },
        ],
      }),
    );
    const r = await run("apply", "--yes");
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const cell = path.join(state, "cells", "roles");
    const read = (h: string) => readFileSync(path.join(cell, "home", h, "probe.txt"), "utf8").trim();
    await waitFor(
      () => ["exec", "obs", "gst"].every((h) => existsSync(path.join(cell, "home", h, "probe.txt"))),
      120_000,
    );
    const uid = readRecord(cell).containerUid?.uid;
    expect(uid).toBeGreaterThanOrEqual(band.first);
    expect(uid).toBeLessThanOrEqual(band.last);
    const creds = existsSync(path.join(cell, ".lazarus", "secrets", "credentials.json")) ? "yes" : "no";
    expect(read("exec")).toBe(`uid:${uid} project:rw shared:rw homes:exec, creds:${creds} net:lo, rootfs:ro`);
    expect(read("obs")).toBe(`uid:${uid} project:ro shared:ro homes:obs, creds:${creds} net:lo, rootfs:ro`);
    expect(read("gst")).toBe(`uid:${uid} project:ro shared:none homes:gst, creds:no net:lo, rootfs:ro`);
  }, 300_000);

  it("restarts the members into a changed container spec", async () => {
    const yaml = (ro: boolean) =>
      cellYaml({
        name: "respec",
        extra: `  backend: container\n  container: {image: "${IMAGE}", readOnlyRootfs: ${ro}}`,
        members: [{ identity: "agent:p", command: probe }],
      });
    const result = path.join(state, "cells", "respec", "home", "p", "probe.txt");
    writeFileSync(path.join(cfg, "cells.d", "respec.yaml"), yaml(true));
    expect((await run("apply", "--yes")).exitCode).toBe(0);
    await waitFor(() => existsSync(result), 120_000);
    expect(readFileSync(result, "utf8")).toContain("rootfs:ro");
    rmSync(result);
    writeFileSync(path.join(cfg, "cells.d", "respec.yaml"), yaml(false));
    const plan = await run("plan");
    expect(plan.stdout).toContain("(members restart)");
    expect((await run("apply", "--yes")).exitCode).toBe(0);
    await waitFor(() => existsSync(result) && readFileSync(result, "utf8").includes("rootfs:rw"), 120_000);
    expect((await run("plan", "--detailed-exitcode")).exitCode).toBe(0);
  }, 300_000);

  it("labels each member's container with its cell, incarnation, member and spawn, and applies its limits", async () => {
    writeFileSync(
      path.join(cfg, "cells.d", "lab.yaml"),
      cellYaml({
        name: "lab",
        extra: `  backend: container\n  container: {image: "${IMAGE}"}\n  resources: {memory: 64Mi, pids: 100}`,
        members: [{ identity: "agent:l", command: ["sleep", "100000"] }],
      }),
    );
    expect((await run("apply", "--yes")).exitCode).toBe(0);
    const rec = readRecord(path.join(state, "cells", "lab"));
    const m = rec.members.find((x) => x.identity === "agent:l");
    await waitFor(() => containersOf([rec.uid]).length > 0, 120_000); // `run` has created it
    const names = containersOf([rec.uid]);
    expect(names).toEqual([`lazarus-${m?.spawnId}`]);
    const inspect = spawnSync(
      engine.bin as string,
      [
        "inspect",
        "--format",
        "{{json .Config.Labels}} {{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.NetworkMode}}",
        names[0] as string,
      ],
      { encoding: "utf8" },
    );
    const [labels, memory, pids, network] = inspect.stdout.trim().split(" ");
    expect(JSON.parse(labels as string)).toMatchObject({
      "lazarus.cell": "lab",
      "lazarus.cell.uid": rec.uid,
      "lazarus.member": "agent:l",
      "lazarus.spawn": m?.spawnId,
    });
    expect([memory, pids, network]).toEqual([String(64 * 1024 * 1024), "100", "none"]);
  }, 300_000);

  it("gives a member without resources the host's default memory and pid limits (LAZARUS_DEFAULT_MEMORY, LAZARUS_DEFAULT_PIDS)", async () => {
    writeFileSync(
      path.join(cfg, "cells.d", "dflt.yaml"),
      cellYaml({
        name: "dflt",
        extra: `  backend: container\n  container: {image: "${IMAGE}"}`,
        members: [{ identity: "agent:d", command: ["sleep", "100000"] }],
      }),
    );
    const applied = await lazarus(["apply", "--yes", "-c", cfg, "-s", state], {
      env: { ...env, LAZARUS_DEFAULT_MEMORY: "96Mi", LAZARUS_DEFAULT_PIDS: "150" },
    });
    expect(applied.exitCode, applied.stdout + applied.stderr).toBe(0);
    const rec = readRecord(path.join(state, "cells", "dflt"));
    await waitFor(() => containersOf([rec.uid]).length > 0, 120_000);
    const inspect = spawnSync(
      engine.bin as string,
      ["inspect", "--format", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}", containersOf([rec.uid])[0] as string],
      { encoding: "utf8" },
    );
    expect(inspect.stdout.trim().split(" ")).toEqual([String(96 * 1024 * 1024), "150"]);
  }, 300_000);

  it("runs a user given as a uid alone with the gid of that number, never the host's root group", async () => {
    // A uid of this file's own (backends/container-user), no host account, outside the cell uid range.
    const user = uidBand("backends/container-user").first;
    writeFileSync(
      path.join(cfg, "cells.d", "usr.yaml"),
      cellYaml({
        name: "usr",
        extra: `  backend: container\n  container: {image: "${IMAGE}", user: "${user}"}`,
        members: [
          { identity: "agent:u", command: ["sh", "-c", 'echo "ids:$(id -u):$(id -g):$(id -G)"; exec sleep 100000'] },
        ],
      }),
    );
    const r = await run("apply", "--yes");
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const log = path.join(state, "cells", "usr", ".lazarus", "logs", "u.log");
    await waitFor(() => existsSync(log) && readFileSync(log, "utf8").includes("ids:"), 120_000);
    expect(readFileSync(log, "utf8")).toMatch(new RegExp(`ids:${user}:${user}:${user}\n`));
  }, 300_000);

  it("replaces a container whose supervisor was killed by one new container, never two", async () => {
    const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();
    writeFileSync(
      path.join(cfg, "cells.d", "orphan.yaml"),
      cellYaml({
        name: "orphan",
        extra: `  backend: container\n  container: {image: "${IMAGE}"}`,
        members: [{ identity: "agent:o", command: ["sleep", "100000"] }],
      }),
    );
    expect((await run("apply", "--yes", "--now", T(0))).exitCode).toBe(0);
    const rec = readRecord(path.join(state, "cells", "orphan"));
    const first = rec.members.find((x) => x.identity === "agent:o");
    await waitFor(() => containersOf([rec.uid]).length === 1, 120_000); // `run` has created it
    process.kill(first?.pid as number, "SIGKILL"); // the supervisor only: its container runs on
    await waitFor(() => !isAlive(first?.pid, first?.startTime));
    expect(containersOf([rec.uid])).toEqual([`lazarus-${first?.spawnId}`]);
    for (const m of [1, 10]) {
      const r = await run("apply", "--yes", "--now", T(m)); // notices it down, restarts after the backoff
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    }
    const second = readRecord(path.join(state, "cells", "orphan")).members.find((x) => x.identity === "agent:o");
    expect(second?.spawnId).not.toBe(first?.spawnId);
    expect(isAlive(second?.pid, second?.startTime)).toBe(true);
    await waitFor(() => containersOf([rec.uid]).includes(`lazarus-${second?.spawnId}`), 120_000);
    expect(containersOf([rec.uid])).toEqual([`lazarus-${second?.spawnId}`]);
  }, 300_000);

  it("refuses a cell whose image the engine does not hold, at the image's line", async () => {
    const text = cellYaml({
      name: "noimg",
      extra: "  backend: container\n  container: {image: localhost/lazarus-test:absent}",
      members: [{ identity: "agent:x", command: ["true"] }],
    });
    const dir = configDir({ "cells.d/noimg.yaml": text });
    try {
      const r = await lazarus(["validate", "-c", dir], { env });
      expect(r.exitCode).toBe(1);
      expect(r.stdout + r.stderr).toMatch(
        /cells\.d\/noimg\.yaml:\d+:\d+.*image localhost\/lazarus-test:absent is not present in (podman|docker)/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe("container cells without an engine", () => {
  it("are refused by validate with the reason", async () => {
    const dir = configDir({
      "cells.d/x.yaml": cellYaml({
        name: "x",
        extra: `  backend: container\n  container: {image: "${IMAGE}"}`,
        members: [{ identity: "agent:x", command: ["true"] }],
      }),
    });
    try {
      const r = await lazarus(["validate", "-c", dir], { env: { LAZARUS_CONTAINER_ENGINE: "rkt" } });
      expect(r.exitCode).toBe(1);
      expect(r.stdout + r.stderr).toContain(
        'backend container cannot run on this host: LAZARUS_CONTAINER_ENGINE "rkt" is neither podman nor docker',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("need spec.container", async () => {
    const dir = configDir({
      "cells.d/x.yaml": cellYaml({
        name: "x",
        extra: "  backend: container",
        members: [{ identity: "agent:x", command: ["true"] }],
      }),
    });
    try {
      const r = await lazarus(["validate", "-c", dir]);
      expect(r.exitCode).toBe(1);
      expect(r.stdout + r.stderr).toContain("backend container needs spec.container.image");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
