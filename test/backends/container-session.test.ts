// lazarus exec and lazarus shell in a container cell, through the CLI: a container of the
// session's own with the member's image, uid and mounts by role, stdin and exit codes passed
// through, a shell on the container's own pty, and nothing left behind.
import { existsSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, cellYaml, configDir, lazarus, readRecord, tempDir, uidBand } from "../helpers.js";
import { inPty } from "../pty.js";
import { IMAGE, cleanupContainers, containersOf, skipReason } from "./container-helpers.js";

describe.skipIf(skipReason)("lazarus exec and shell (backend container)", () => {
  const env = { LAZARUS_UID_RANGE: uidBand("backends/container-session").range };
  const state = tempDir("lazarus-ctr-session-");
  const cfg = configDir({
    "cells.d/ctr.yaml": cellYaml({
      name: "ctr",
      extra: `  backend: container\n  container: {image: "${IMAGE}"}`,
      members: [
        { identity: "human:alice", role: "executor" },
        { identity: "human:rev", role: "observer" },
      ],
    }),
  });
  const cli = (args: string[]): string[] => {
    const at = args.includes("--") ? args.indexOf("--") : args.length;
    return [...args.slice(0, at), "-c", cfg, "-s", state, ...args.slice(at)];
  };
  const run = (args: string[], input?: string) =>
    lazarus(cli(args), { env, ...(input !== undefined ? { input } : {}), timeoutMs: 180_000 });
  const cellDir = path.join(state, "cells", "ctr");
  let uids: string[] = [];

  beforeAll(async () => {
    const ap = await run(["apply", "--yes"]);
    expect(ap.exitCode, ap.stdout + ap.stderr).toBe(0);
    uids = [readRecord(cellDir).uid];
    for (const who of ["alice", "rev"])
      expect(
        (
          await run(
            ["accept", "ctr", `human:${who}`, "--token", "-"],
            readFileSync(path.join(cellDir, ".lazarus", "invites", `${who}.token`), "utf8"),
          )
        ).exitCode,
      ).toBe(0);
  }, 240_000);
  afterAll(async () => {
    rmSync(path.join(cfg, "cells.d", "ctr.yaml"), { force: true });
    await run(["apply", "--yes"]);
    await cleanupContainers(state, uids);
    for (const d of [state, cfg]) rmSync(d, { recursive: true, force: true });
  });

  it("runs a command in a container of the member's view, passes stdin and the exit code, and removes the container", async () => {
    const uid = readRecord(cellDir).containerUid?.uid;
    const r = await run(
      [
        "exec",
        "ctr",
        "--as",
        "human:alice",
        "--",
        "sh",
        "-c",
        "id -u; ls /cell/home; cat; touch /cell/project/by-alice && echo wrote; exit 5",
      ],
      "typed\n",
    );
    expect(r.exitCode, r.stderr).toBe(5);
    expect(r.stdout.split("\n")).toEqual([String(uid), "alice", "typed", "wrote"]);
    expect(existsSync(path.join(cellDir, "project", "by-alice"))).toBe(true);
    const ro = await run(["exec", "ctr", "--as", "human:rev", "--", "touch", "/cell/project/by-rev"]);
    expect(ro.exitCode).not.toBe(0);
    expect(ro.exitCode).not.toBe(125);
    expect(ro.stderr).toMatch(/Read-only file system/);
    expect(containersOf(uids)).toEqual([]);
  });

  it("opens a shell on the container's own pseudo-terminal and records it", async () => {
    const out = await inPty(
      ["node", CLI, ...cli(["shell", "ctr", "--as", "human:alice"])],
      'echo "tty=$(tty) shell=$SHELL"; exit 6\n',
      env,
    );
    expect(out.status, out.output).toBe(6);
    expect(out.output).toMatch(/tty=\/dev\/pts\/\d+ shell=\/bin\/sh/);
    const ev = (await lazarus(["events", "ctr", "--json", "-s", state])).stdout
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { action: string; details?: Record<string, unknown> });
    expect(
      ev.filter((e) => e.action.startsWith("shell")).map((e) => [e.action, e.details?.backend ?? e.details?.exitCode]),
    ).toEqual([
      ["shell", "container"],
      ["shell-end", 6],
    ]);
    expect(containersOf(uids)).toEqual([]);
  });
});
