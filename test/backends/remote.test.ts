// backend: remote against a real sshd started here (127.0.0.1, its own host key, a test user):
// members on the "remote" host, a hostile argument kept literal, checkpoints copied back and
// checked, an unreachable host or a changed host key holding the cell (unknown, nothing closed),
// scrub removing the remote tree; and validate's file:line errors.
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cellYaml, configDir, lazarus, readRecord, tempDir, waitFor, procState, uidBand } from "../helpers.js";
import { processesOf, remoteSkip, testHost, type TestHost } from "./remote-helpers.js";
import { remoteCommand, ssh } from "../../src/backends/remote/ssh.js";
import { sshBinary } from "../../src/backends/remote/hosts.js";
import { spawnSync } from "node:child_process";

const skip = remoteSkip();
const ALLOW = { LAZARUS_REMOTE_INLINE: "allow" }; // the tests declare connections inline

// No ssh needed: the command string ssh hands the remote login shell keeps every word literal.
describe("remote command quoting", () => {
  it("passes hostile words through a shell unchanged", () => {
    const words = [
      "$(id)",
      "`id`",
      "a b",
      "'",
      '"',
      "\\",
      "; rm -rf /tmp/x",
      "$HOME",
      "*",
      "-e",
      "--",
      "\n",
      "line\nbreak",
      "it's",
      "",
      "${IFS}",
      "!",
    ];
    const r = spawnSync("/bin/sh", ["-c", remoteCommand('printf "%s\\0" "$@"', words)], { encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout.split("\0").slice(0, -1)).toEqual(words);
  });
});

// No sshd needed: where a long state dir puts the control sockets (a guessable dir in the temp
// dir, which is everyone's), a dir another user made first, or a link, is refused, never used.
describe.skipIf(!sshBinary() || process.getuid?.() !== 0)("the ssh control-socket dir in the temp dir", () => {
  const target = {
    host: "127.0.0.1",
    port: 22,
    identityFile: "/nonexistent/id",
    knownHosts: "/nonexistent/known_hosts",
    root: "~/cells",
  };
  const states: string[] = [];
  afterAll(() => {
    for (const d of states) rmSync(d, { recursive: true, force: true });
  });
  // A state dir whose <state>/ssh/<hash> would pass the unix socket's length limit, and the
  // private dir its sockets then go to.
  const longState = () => {
    const state = path.join(tempDir("lazarus-ssh-long-"), "x".repeat(90));
    states.push(path.dirname(state));
    const dir = path.dirname(ssh(state, target).control);
    expect(dir.startsWith(`${tmpdir()}/lazarus-ssh-`)).toBe(true);
    states.push(dir);
    return { state, dir };
  };

  it("is made 0700 and Lazarus's own, and narrowed back to 0700 when wider", () => {
    const { state, dir } = longState();
    expect(lstatSync(dir).mode & 0o777).toBe(0o700);
    chmodSync(dir, 0o777);
    ssh(state, target);
    expect(lstatSync(dir).mode & 0o777).toBe(0o700);
  });

  it("refuses one another user made first, or a link, saying what to do", () => {
    const other = uidBand("backends/remote").first;
    const { state, dir } = longState();
    rmSync(dir, { recursive: true });
    mkdirSync(dir, { mode: 0o777 });
    chownSync(dir, other, other); // another user (this file's uid band)
    expect(() => ssh(state, target)).toThrow(
      new RegExp(`control sockets .* is owned by uid ${other}, not by Lazarus's uid 0.*remove it`),
    );
    rmSync(dir, { recursive: true });
    const elsewhere = tempDir("lazarus-ssh-elsewhere-");
    states.push(elsewhere);
    symlinkSync(elsewhere, dir);
    expect(() => ssh(state, target)).toThrow(/control sockets .* is a symbolic link/);
    rmSync(dir);
  });
});

interface StatusCell {
  name: string;
  state: string;
  place: string;
  problem?: string;
  members: { identity: string; status: string; pid: number | null; exitCode: number | null }[];
}

const lstatIsLink = (p: string): boolean => {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
};
const alive = (pid: number): boolean => {
  const s = procState(pid);
  return s !== undefined && s !== "Z" && s !== "X";
};

describe.skipIf(skip)("backend remote", () => {
  let host: TestHost;
  const dirs: string[] = [];
  beforeAll(async () => {
    host = await testHost();
    await host.start();
  }, 120_000);
  afterAll(async () => {
    await host?.remove();
    for (const d of [...dirs, host?.dir]) if (d) rmSync(d, { recursive: true, force: true });
  }, 120_000);

  const remoteLines = (h: TestHost, root = "~/cells"): string =>
    [
      "  backend: remote",
      "  remote:",
      "    host: 127.0.0.1",
      `    port: ${h.port}`,
      `    user: ${h.user}`,
      `    identityFile: ${h.identityFile}`,
      `    knownHosts: ${h.knownHosts}`,
      `    root: "${root}"`,
    ].join("\n");

  function env(): {
    state: string;
    run(args: string[]): ReturnType<typeof lazarus>;
    status(): Promise<StatusCell[]>;
    write(yaml: string): void;
    cfg: string;
  } {
    const state = tempDir("lzr-remote-state-");
    const cfg = configDir({});
    dirs.push(state, cfg);
    return {
      state,
      cfg,
      write: (yaml) => writeFileSync(path.join(cfg, "cells.d", "cell.yaml"), yaml),
      run: (args) => lazarus([...args, "--config", cfg, "--state-dir", state], { timeoutMs: 240_000, env: ALLOW }),
      status: async () => {
        const r = await lazarus(["status", "--json", "--state-dir", state], { timeoutMs: 240_000, env: ALLOW });
        expect(r.exitCode, r.stderr).toBe(0);
        return (JSON.parse(r.stdout) as { cells: StatusCell[] }).cells;
      },
    };
  }

  it("runs members on the remote host as its user, keeps a hostile argument literal, checkpoints there and copies back, closes and scrubs", async () => {
    const e = env();
    const pwned = path.join(host.dir, "pwned");
    const hostile = `$(touch ${pwned}); \`touch ${pwned}\` ' " \\ ; touch ${pwned} #`;
    e.write(
      cellYaml({
        name: "far",
        grace: "1s",
        extra: remoteLines(host),
        members: [
          {
            identity: "agent:allegro",
            command: [
              "/bin/sh",
              "-c",
              'printf "%s" "$1" > arg.txt; echo hello > "$CELL_HOME/project/notes.md"; echo remote-out allegro; ln -s /etc/passwd "$CELL_HOME/logs/planted.log"; exec sleep 100000',
              "member",
              hostile,
            ],
          },
          { identity: "agent:brief", restart: "never", command: ["/bin/sh", "-c", "exit 3"] },
        ],
      }),
    );
    const applied = await e.run(["apply", "--yes"]);
    expect(applied.exitCode, applied.stderr + applied.stdout).toBe(0);
    const rec = readRecord(path.join(e.state, "cells", "far"));
    expect(rec.remoteDir).toBe(path.join(host.home, "cells", `far.${rec.uid}`));
    const allegro = rec.members.find((m) => m.identity === "agent:allegro");
    expect(allegro?.status).toBe("running");
    const pid = allegro?.pid as number;
    // the "remote" host is this machine: the member is a process of the test user
    expect(processesOf(host.uid)).toContain(pid);
    const home = path.join(rec.remoteDir as string, "home", "allegro");
    await waitFor(
      () => existsSync(path.join(home, "arg.txt")) && readFileSync(path.join(home, "arg.txt"), "utf8").length > 0,
      60_000,
    );
    expect(readFileSync(path.join(home, "arg.txt"), "utf8")).toBe(hostile);
    expect(existsSync(pwned)).toBe(false);
    // the cell tree is on the remote host, not in the state dir
    expect(existsSync(path.join(rec.remoteDir as string, "project", "notes.md"))).toBe(true);
    expect(existsSync(path.join(e.state, "cells", "far", "project", "notes.md"))).toBe(false);

    // the exit file on the remote host is read back: brief exited 3
    await waitFor(() => existsSync(path.join(rec.remoteDir as string, "logs", "brief.exit")), 60_000);
    const st = await e.status();
    const far = st.find((c) => c.name === "far" && c.place === "cells");
    expect(far?.state).toBe("active");
    expect(far?.members.find((m) => m.identity === "agent:allegro")?.status).toBe("running");
    expect(far?.members.find((m) => m.identity === "agent:brief")).toMatchObject({ status: "exited", exitCode: 3 });

    // a checkpoint made there, copied here with its sha256 checked
    const cp = await e.run(["checkpoint", "far"]);
    expect(cp.exitCode, cp.stderr).toBe(0);
    const ckDir = path.join(e.state, "cells", "far", ".lazarus", "checkpoints");
    const manifests = readdirSync(ckDir).filter((f) => f.endsWith(".manifest.json"));
    expect(manifests).toHaveLength(1);
    const manifest = JSON.parse(readFileSync(path.join(ckDir, manifests[0] as string), "utf8")) as {
      files: { path: string }[];
    };
    expect(manifest.files.map((f) => f.path)).toContain("project/notes.md");
    expect(manifest.files.map((f) => f.path)).toContain("home/allegro/arg.txt");
    expect(alive(pid)).toBe(true); // thawed after

    await waitFor(
      () =>
        existsSync(path.join(rec.remoteDir as string, "logs", "planted.log")) ||
        lstatIsLink(path.join(rec.remoteDir as string, "logs", "planted.log")),
      30_000,
    );
    // close: the remote member is stopped; scrub (after grace): the remote tree goes
    e.write(
      cellYaml({ name: "far", grace: "1s", state: "closed", extra: remoteLines(host), members: [] }).replace(
        "  members:\n",
        "  members: []\n",
      ),
    );
    const closed = await e.run(["apply", "--yes"]);
    expect(closed.exitCode, closed.stderr + closed.stdout).toBe(0);
    expect(alive(pid)).toBe(false);
    expect(existsSync(rec.remoteDir as string)).toBe(true); // kept through grace
    // the members' logs came here with the cell: its graveyard entry has them, and a planted link
    // among the remote logs is not followed
    const graveLogs = path.join(e.state, "graveyard", "far", ".lazarus", "logs");
    expect(readFileSync(path.join(graveLogs, "allegro.log"), "utf8")).toContain("remote-out allegro");
    expect(existsSync(path.join(graveLogs, "planted.log"))).toBe(false);
    await new Promise((r) => setTimeout(r, 1100)); // grace (1s) must pass: not a timing assertion
    const scrubbed = await e.run(["apply", "--yes"]);
    expect(scrubbed.exitCode, scrubbed.stderr + scrubbed.stdout).toBe(0);
    expect(existsSync(rec.remoteDir as string)).toBe(false);
    const archived = readdirSync(path.join(e.state, "archive"), { recursive: true, encoding: "utf8" }).filter((f) =>
      f.endsWith("allegro.log"),
    );
    expect(archived).toHaveLength(1); // and the archive keeps them
  }, 600_000);

  it("holds the cells of an unreachable host (unknown, nothing closed or restarted) until it answers, and refuses a changed host key", async () => {
    const e = env();
    const members = [
      { identity: "agent:allegro", command: ["sleep", "100001"] },
      { identity: "agent:brief", restart: "always", command: ["sleep", "100002"] },
    ];
    e.write(cellYaml({ name: "held", extra: remoteLines(host), members }));
    expect((await e.run(["apply", "--yes"])).exitCode).toBe(0);
    const rec = readRecord(path.join(e.state, "cells", "held"));
    const pid = rec.members[0]?.pid as number;
    const brief = rec.members[1]?.pid as number;
    expect(alive(pid)).toBe(true);

    await host.stop();
    try {
      // a member dies while its host is away: not seen, so not restarted (or restarted elsewhere)
      process.kill(-brief, "SIGKILL");
      const away = JSON.parse((await e.run(["plan", "--json"])).stdout) as { actions: unknown[] };
      expect(away.actions).toEqual([]);
      const st = await e.status();
      const held = st.find((c) => c.name === "held");
      expect(held?.state).toBe("unknown");
      expect(held?.problem).toMatch(/unreachable/);
      expect(held?.members[0]?.status).toBe("unknown");
      // declared closed meanwhile: nothing is closed while the host is away
      e.write(cellYaml({ name: "held", state: "closed", extra: remoteLines(host), members }));
      const plan = await e.run(["plan", "--json"]);
      const p = JSON.parse(plan.stdout) as { actions: unknown[]; pending: { cell: string; reason: string }[] };
      expect(p.actions).toEqual([]);
      expect(p.pending.find((x) => x.cell === "held")?.reason).toMatch(/unknown.*unreachable/);
      const applied = await e.run(["apply", "--yes"]);
      expect(applied.exitCode, applied.stderr).toBe(0);
      expect(existsSync(path.join(e.state, "cells", "held"))).toBe(true);
      expect(alive(pid)).toBe(true);

      // the host comes back with another host key: refused, still held
      await host.start(host.newHostKey());
      const st2 = await e.status();
      expect(st2.find((c) => c.name === "held")?.state).toBe("unknown");
      expect(st2.find((c) => c.name === "held")?.problem).toMatch(/host key|verification failed/i);
      expect((await e.run(["apply", "--yes"])).exitCode).toBe(0);
      expect(existsSync(path.join(e.state, "cells", "held"))).toBe(true);
      expect(alive(pid)).toBe(true);
    } finally {
      await host.stop();
      await host.start();
    }
    // the host is back with its pinned key: the close goes through
    const closed = await e.run(["apply", "--yes"]);
    expect(closed.exitCode, closed.stderr + closed.stdout).toBe(0);
    expect(existsSync(path.join(e.state, "graveyard", "held"))).toBe(true);
    expect(alive(pid)).toBe(false);
  }, 600_000);

  it("follows a moved key file: plan updates the cell's remote in place, members keep running, the old file can go", async () => {
    const e = env();
    const keys = tempDir("lzr-remote-keys-");
    dirs.push(keys);
    const [first, second] = [path.join(keys, "first"), path.join(keys, "second")];
    for (const k of [first, second]) {
      writeFileSync(k, readFileSync(host.identityFile));
      chmodSync(k, 0o600);
    }
    const members = [{ identity: "agent:allegro", command: ["sleep", "100003"] }];
    e.write(cellYaml({ name: "keyed", extra: remoteLines({ ...host, identityFile: first }), members }));
    expect((await e.run(["apply", "--yes"])).exitCode).toBe(0);
    const pid = readRecord(path.join(e.state, "cells", "keyed")).members[0]?.pid as number;

    e.write(cellYaml({ name: "keyed", extra: remoteLines({ ...host, identityFile: second }), members }));
    const plan = JSON.parse((await e.run(["plan", "--json"])).stdout) as {
      actions: { action: string; fields?: string[]; reason: string }[];
    };
    expect(plan.actions).toEqual([
      expect.objectContaining({
        action: "update",
        fields: ["remote"],
        reason: "remote identityFile changed (the next connection uses it; members keep running)",
      }),
    ]);
    const applied = await e.run(["apply", "--yes"]);
    expect(applied.exitCode, applied.stderr + applied.stdout).toBe(0);
    expect(readRecord(path.join(e.state, "cells", "keyed")).remote?.identityFile).toBe(second);
    rmSync(first);
    const st = await e.status();
    expect(st.find((c) => c.name === "keyed")).toMatchObject({
      state: "active",
      members: [expect.objectContaining({ status: "running", pid })],
    });
    expect(alive(pid)).toBe(true);
    expect((JSON.parse((await e.run(["plan", "--json"])).stdout) as { actions: unknown[] }).actions).toEqual([]);

    e.write(
      cellYaml({ name: "keyed", state: "closed", extra: remoteLines({ ...host, identityFile: second }), members }),
    );
    expect((await e.run(["apply", "--yes"])).exitCode).toBe(0);
    expect(alive(pid)).toBe(false);
  }, 600_000);

  it("validate names a missing identity file, known_hosts file, ssh client and hosts-file entry at their lines", async () => {
    const e = env();
    e.write(
      cellYaml({
        name: "bad",
        extra: remoteLines({ ...host, identityFile: "/nonexistent/key", knownHosts: "/nonexistent/known" }),
      }),
    );
    const v = await lazarus(["validate", "--config", e.cfg], { env: ALLOW });
    expect(v.exitCode).not.toBe(0);
    const out = v.stdout + v.stderr;
    expect(out).toMatch(
      /cells\.d\/cell\.yaml:\d+:\d+: error: spec\.remote\.identityFile: the identity file \/nonexistent\/key does not exist/,
    );
    expect(out).toMatch(
      /cells\.d\/cell\.yaml:\d+:\d+: error: spec\.remote\.knownHosts: the known_hosts file \/nonexistent\/known does not exist/,
    );

    e.write(cellYaml({ name: "bad", extra: remoteLines(host) }));
    const noSsh = await lazarus(["validate", "--config", e.cfg], {
      env: { ...ALLOW, LAZARUS_SSH: "/nonexistent/ssh" },
    });
    expect(noSsh.exitCode).not.toBe(0);
    expect(noSsh.stdout + noSsh.stderr).toMatch(
      /cell\.yaml:\d+:\d+: error: spec\.backend: backend remote needs the OpenSSH client \(ssh\)/,
    );

    const hosts = path.join(e.cfg, "..", `hosts-${path.basename(e.cfg)}.yaml`);
    writeFileSync(
      hosts,
      `hosts:\n  box:\n    host: 127.0.0.1\n    port: ${host.port}\n    identityFile: ${host.identityFile}\n    knownHosts: ${host.knownHosts}\n`,
    );
    dirs.push(hosts);
    // without the operator's leave, an inline connection is refused, at the cell's line (an invalid
    // file holds its cells, as any: test/integration/bad-input.test.ts)
    const refused = await lazarus(["validate", "--config", e.cfg]);
    expect(refused.exitCode).not.toBe(0);
    expect(refused.stdout + refused.stderr).toMatch(
      /cell\.yaml:\d+:\d+: error: spec\.remote\.identityFile: backend remote: an inline connection .* is refused unless the operator allows it/,
    );
    expect(refused.stdout + refused.stderr).toContain("LAZARUS_REMOTE_INLINE=allow");
    e.write(cellYaml({ name: "bad", extra: "  backend: remote\n  remote: {name: other}" }));
    const unknown = await lazarus(["validate", "--config", e.cfg], { env: { LAZARUS_REMOTE_HOSTS: hosts } });
    expect(unknown.exitCode).not.toBe(0);
    expect(unknown.stdout + unknown.stderr).toMatch(
      /cell\.yaml:\d+:\d+: error: spec\.remote\.name: backend remote: host other is not in the hosts file/,
    );
    e.write(cellYaml({ name: "bad", extra: "  backend: remote\n  remote: {name: box}" }));
    const named = await lazarus(["validate", "--config", e.cfg], { env: { LAZARUS_REMOTE_HOSTS: hosts } });
    expect(named.exitCode, named.stdout + named.stderr).toBe(0);
  }, 120_000);
});
