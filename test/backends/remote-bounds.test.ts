// The remote backend keeps the local backends' bounds: closing a cell stops the children a member's
// leader left in its process group on the remote host (`sh -c 'sleep 100000 & exit 1'`), and a
// checkpoint past checkpoint.maxSize is refused by a size walk on the remote host before the cell
// is frozen and before any tar is written there. A real sshd on 127.0.0.1 (skipped without it);
// its user's uid, and its cells', from this file's band (uidBand).
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cellYaml, configDir, lazarus, procState, readRecord, tempDir, uidBand, waitFor } from "../helpers.js";
import { remoteSkip, testHost, type TestHost } from "./remote-helpers.js";

import { RemoteBackend } from "../../src/backends/remote/remote.js";

const BAND = uidBand("backends/remote-bounds");
process.env.LAZARUS_UID_RANGE = BAND.range; // its cells' uids too

const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();
const ALLOW = { LAZARUS_REMOTE_INLINE: "allow" };
const skip = remoteSkip();
if (skip) console.warn(`SKIPPED: remote bounds: ${skip}`);
const live = (pid: number): boolean => {
  const s = procState(pid);
  return s !== undefined && s !== "Z" && s !== "X";
};

describe.skipIf(skip)("the remote backend's bounds", () => {
  let host: TestHost;
  const dirs: string[] = [];
  const leaked: number[] = [];
  beforeAll(async () => {
    host = await testHost(BAND);
    await host.start();
  }, 120_000);
  afterAll(async () => {
    for (const pid of leaked) if (live(pid)) process.kill(pid, "SIGKILL");
    await host?.remove();
    for (const d of [...dirs, host?.dir]) if (d) rmSync(d, { recursive: true, force: true });
  }, 120_000);

  const remoteLines = (h: TestHost): string =>
    [
      "  backend: remote",
      "  remote:",
      "    host: 127.0.0.1",
      `    port: ${h.port}`,
      `    user: ${h.user}`,
      `    identityFile: ${h.identityFile}`,
      `    knownHosts: ${h.knownHosts}`,
      '    root: "~/cells"',
    ].join("\n");
  const setup = () => {
    const state = tempDir("lzr-remote-bounds-");
    const cfg = configDir({});
    dirs.push(state, cfg);
    const run = (now: string) =>
      lazarus(["apply", "--yes", "--now", now, "--config", cfg, "--state-dir", state], {
        timeoutMs: 240_000,
        env: ALLOW,
      });
    const tree = (cell: string) => {
      const uid = readRecord(path.join(state, "cells", cell)).uid;
      return path.join(host.home, "cells", `${cell}.${uid}`);
    };
    return { state, cfg, run, tree };
  };

  // A cell whose one member's leader starts a child in its group and exits: its setup, the child's
  // pid once the leader is gone (the child lives on), and how to close the cell.
  const leakyCell = async (name: string) => {
    const e = setup();
    const leaky = ["/bin/sh", "-c", 'sleep 100000 & echo $! > "$HOME/child.pid"; exit 1'];
    const file = path.join(e.cfg, "cells.d", `${name}.yaml`);
    writeFileSync(
      file,
      cellYaml({
        name,
        grace: "1m",
        extra: remoteLines(host),
        members: [{ identity: "agent:l", restart: "never", command: leaky }],
      }),
    );
    const created = await e.run(T(0));
    expect(created.exitCode, created.stdout + created.stderr).toBe(0);
    const pidFile = path.join(e.tree(name), "home", "l", "child.pid");
    await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").trim() !== "", 20_000);
    const child = Number(readFileSync(pidFile, "utf8").trim());
    leaked.push(child);
    const rec = readRecord(path.join(e.state, "cells", name));
    await waitFor(() => !live(rec.members[0]?.pid as number), 20_000); // the leader exited
    expect(live(child)).toBe(true); // its child lives on in its group
    const close = async (): Promise<void> => {
      rmSync(file);
      const closed = await e.run(T(1));
      expect(closed.exitCode, closed.stdout + closed.stderr).toBe(0);
    };
    return { e, rec, child, close };
  };

  it("stops at close the children a member's leader left in its group", async () => {
    const { child, close } = await leakyCell("leaky");
    await close();
    await waitFor(() => !live(child), 10_000);
  }, 240_000);

  it("freezes and thaws the children a member's leader left in its group (a checkpoint's freeze)", async () => {
    const { e, rec, child, close } = await leakyCell("frozen");
    const backend = new RemoteBackend(e.state, { ...process.env, ...ALLOW });
    await backend.freeze(rec, true);
    expect(procState(child)).toBe("T"); // stopped: it cannot write while the tree is read
    await backend.freeze(rec, false);
    expect(procState(child)).toBe("S");
    await close();
    await waitFor(() => !live(child), 10_000);
  }, 240_000);

  it("refuses a checkpoint past checkpoint.maxSize by a walk on the remote host, before any tar is made there", async () => {
    const e = setup();
    // a 64 GiB sparse file: almost no blocks, but its apparent size is what a checkpoint reads
    const member = [
      "/bin/sh",
      "-c",
      'truncate -s 64G "$CELL_HOME/project/huge" && echo ready > "$HOME/ready"; exec sleep 100000',
    ];
    writeFileSync(
      path.join(e.cfg, "cells.d", "big.yaml"),
      cellYaml({
        name: "big",
        grace: "1m",
        extra: `${remoteLines(host)}\n  checkpoint: {schedule: "* * * * *", maxSize: 1Gi}`,
        members: [{ identity: "agent:b", command: member }],
      }),
    );
    const created = await e.run(T(0));
    expect(created.exitCode, created.stdout + created.stderr).toBe(0);
    await waitFor(() => existsSync(path.join(e.tree("big"), "home", "b", "ready")), 20_000);

    const refused = await e.run(T(2));
    expect(refused.stdout + refused.stderr).toMatch(
      /checkpoint of cell big refused: its files come to at least 64Gi \(largest file: 64Gi\), more than its size bound checkpoint\.maxSize 1Gi/,
    );
    // refused before the tar: none was written on the remote host, none kept here
    expect(existsSync(path.join(e.tree("big"), ".lazarus", "checkpoint.tmp.tar"))).toBe(false);
    expect(
      readdirSync(path.join(e.state, "cells", "big", ".lazarus", "checkpoints")).filter((n) => !n.startsWith(".")),
    ).toEqual([]);
    expect(readRecord(path.join(e.state, "cells", "big")).checkpointRefused?.error).toMatch(/refused/);
    expect(readRecord(path.join(e.state, "cells", "big")).state).toBe("active");
  }, 240_000);
});
