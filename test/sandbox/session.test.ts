// lazarus exec and lazarus shell in a sandboxed cell, through the CLI: the member's own view (the
// cell's uid, its home and no other, read-only project for an observer), its cgroup and limits,
// stdin and exit codes passed through, a shell on a pty of the sandbox's own, and the ledger.
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Cgroup, detectCgroups } from "../../src/backends/sandbox/cgroup.js";
import { CLI, cellYaml, configDir, lazarus, readRecord, waitFor } from "../helpers.js";
import { inPty } from "../pty.js";
import { cgroupPids, cleanupCgroups, sandboxEnv, sandboxStateDir, skipReason } from "./helpers.js";

describe.skipIf(skipReason)("lazarus exec and shell (backend sandbox)", () => {
  const env = sandboxEnv("sandbox/session");
  const state = sandboxStateDir();
  const cfg = configDir({
    "cells.d/box.yaml": cellYaml({
      name: "box",
      extra: "  backend: sandbox\n  resources: {pids: 48}",
      members: [
        { identity: "agent:worker", command: ["sleep", "1000"] },
        { identity: "human:alice", role: "executor" },
        { identity: "human:rev", role: "observer" },
      ],
    }),
  });
  // -c and -s go before "--": what follows is the command's
  const cli = (args: string[]): string[] => {
    const at = args.includes("--") ? args.indexOf("--") : args.length;
    return [...args.slice(0, at), "-c", cfg, "-s", state, ...args.slice(at)];
  };
  const run = (args: string[], input?: string) =>
    lazarus(cli(args), { env, ...(input !== undefined ? { input } : {}), timeoutMs: 120_000 });
  const cellDir = path.join(state, "cells", "box");
  const token = (home: string): string =>
    readFileSync(path.join(cellDir, ".lazarus", "invites", `${home}.token`), "utf8");

  beforeAll(async () => {
    const ap = await run(["apply", "--yes"]);
    expect(ap.exitCode, ap.stdout + ap.stderr).toBe(0);
    for (const who of ["alice", "rev"])
      expect((await run(["accept", "box", `human:${who}`, "--token", "-"], token(who))).exitCode).toBe(0);
  }, 180_000);
  afterAll(async () => {
    rmSync(path.join(cfg, "cells.d", "box.yaml"), { force: true });
    await run(["apply", "--yes"]);
    await cleanupCgroups(env.LAZARUS_CGROUP_ROOT as string);
    for (const d of [state, cfg]) rmSync(d, { recursive: true, force: true });
  });

  it("runs a command as the cell's uid in the member's view and cgroup, with stdin and the exit code passed through", async () => {
    const rec = readRecord(cellDir);
    const uid = rec.sandbox?.uid as number;
    const r = await run(
      [
        "exec",
        "box",
        "--as",
        "human:alice",
        "--",
        "sh",
        "-c",
        'id -u; pwd; ls /cell/home; test -e /cell/home/worker || echo "no worker home"; cat; touch /cell/project/by-alice && echo wrote; exit 9',
      ],
      "typed\n",
    );
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(9);
    expect(r.stdout.split("\n")).toEqual([
      String(uid),
      "/cell/home/alice",
      "alice",
      "no worker home",
      "typed",
      "wrote",
    ]);
    expect(existsSync(path.join(cellDir, "project", "by-alice"))).toBe(true);

    // while it runs, the session is in alice's cgroup, under the member limits of the cell
    const group = `${rec.sandbox?.cgroup}/alice`;
    const exec = execa("node", [CLI, ...cli(["exec", "box", "--as", "human:alice", "--", "cat"])], {
      reject: false,
      stdin: "pipe",
      env: { NO_COLOR: "1", ...env },
    });
    await waitFor(() => cgroupPids(group).length > 0, 60_000);
    const pidsMax = new Cgroup(detectCgroups() as NonNullable<ReturnType<typeof detectCgroups>>, group)
      .dirs()
      .map((d) => path.join(d, "pids.max"))
      .find((f) => existsSync(f));
    expect(pidsMax && readFileSync(pidsMax, "utf8").trim()).toBe("48");
    exec.stdin?.end();
    expect((await exec).exitCode).toBe(0);
    await waitFor(() => cgroupPids(group).length === 0, 30_000);
  });

  it("gives an observer the read-only view its processes get", async () => {
    const r = await run(["exec", "box", "--as", "human:rev", "--", "sh", "-c", "ls /cell; touch /cell/project/by-rev"]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout.split("\n")).toEqual(["home", "project", "shared"]);
    expect(r.stderr).toMatch(/Read-only file system/);
    expect(existsSync(path.join(cellDir, "project", "by-rev"))).toBe(false);
  });

  it("opens an interactive shell on a pseudo-terminal of the sandbox's own, and records it", async () => {
    const rec = readRecord(cellDir);
    const out = await inPty(
      ["node", CLI, ...cli(["shell", "box", "--as", "human:alice", "--shell", "/bin/sh"])],
      'echo "uid=$(id -u) tty=$(tty) home=$HOME other=$(ls /cell/home | wc -l) size=$(stty size)"; exit 6\n',
      env,
    );
    expect(out.stderr).toBe("");
    expect(out.status, out.output).toBe(6);
    // /dev/pts/0: the first pty of the sandbox's own devpts, not the operator's terminal
    expect(out.output).toMatch(
      new RegExp(`uid=${rec.sandbox?.uid} tty=/dev/pts/0 home=/cell/home/alice other=1 size=\\d+ \\d+`),
    );
    const ev = (await lazarus(["events", "box", "--json", "-s", state])).stdout
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { action: string; details?: Record<string, unknown> });
    const shell = ev.filter((e) => e.action.startsWith("shell"));
    expect(shell.map((e) => e.action)).toEqual(["shell", "shell-end"]);
    expect(shell[0]?.details).toMatchObject({
      identity: "human:alice",
      role: "executor",
      backend: "sandbox",
      shell: "/bin/sh",
      tty: true,
    });
    expect(shell[1]?.details).toMatchObject({ session: shell[0]?.details?.session, exitCode: 6, signal: null });
    expect(ev.filter((e) => e.action === "exec").length).toBe(3);
    expect(ev.filter((e) => e.action === "exec-end").length).toBe(3);
  });

  it("ends with the cell: close kills a running session, whose end is recorded after the close", async () => {
    const rec = readRecord(cellDir);
    const group = `${rec.sandbox?.cgroup}/alice`;
    const exec = execa("node", [CLI, ...cli(["exec", "box", "--as", "human:alice", "--", "cat"])], {
      reject: false,
      stdin: "pipe",
      env: { NO_COLOR: "1", ...env },
    });
    await waitFor(() => cgroupPids(group).length > 0, 60_000);
    writeFileSync(
      path.join(cfg, "cells.d", "box.yaml"),
      cellYaml({
        name: "box",
        state: "closed",
        extra: "  backend: sandbox",
        members: [
          { identity: "agent:worker", command: ["sleep", "1000"] },
          { identity: "human:alice", role: "executor" },
          { identity: "human:rev", role: "observer" },
        ],
      }),
    );
    const close = await run(["apply", "--yes"]);
    expect(close.exitCode, close.stdout + close.stderr).toBe(0);
    const r = await exec;
    expect(r.exitCode).toBeGreaterThan(128); // a signal ended it
    expect(cgroupPids(rec.sandbox?.cgroup as string)).toEqual([]);
    const ev = (await lazarus(["events", "box", "--json", "-s", state])).stdout
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { action: string });
    const actions = ev.map((e) => e.action);
    expect(actions.lastIndexOf("exec-end")).toBeGreaterThan(actions.indexOf("close"));
    const refused = await run(["exec", "box", "--as", "human:alice", "--", "true"]);
    expect(refused.exitCode).toBe(125);
    expect(refused.stderr).toMatch(/cell box is closed/);
  });
});
