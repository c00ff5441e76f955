// Checkpoints, downed members, substitutes and invitations through the real CLI and real processes.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import {
  AGENT,
  cellYaml,
  cleanup,
  configDir,
  isAlive,
  lazarus,
  readRecord,
  tempDir,
  waitFor,
  type CellOpts,
} from "../helpers.js";
import { listCheckpoints } from "../../src/observe/observe.js";
import { defaultCompression, type Manifest } from "../../src/checkpoints/checkpoint.js";

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));
const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();
// What a cell without checkpoint.compression gets on this host.
const EXT = defaultCompression() === "zstd" ? ".tar.zst" : ".tar.gz";
const sha = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");

function setup(cells: CellOpts[]) {
  const state = tempDir("lazarus-state-");
  const config = configDir(Object.fromEntries(cells.map((c) => [`cells.d/${c.name}.yaml`, cellYaml(c)])));
  dirs.push(state, config);
  const outputs: string[] = [];
  const run = async (...args: string[]) => {
    const r = await lazarus([...args, "--config", config, "--state-dir", state]);
    outputs.push(r.stdout, r.stderr);
    return r;
  };
  const live = (name: string) => path.join(state, "cells", name);
  return { state, config, run, live, outputs };
}

const procState = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
};

describe("checkpoints", () => {
  it.each([
    ["gzip", ".tar.gz"],
    ["zstd", ".tar.zst"],
  ])(
    "archive project/, shared/ and home/ (%s) so that extracting gives the same files as the manifest",
    async (compression, ext) => {
      const { run, live } = setup([
        {
          name: "c",
          extra: `  checkpoint: {compression: ${compression}}`,
          members: [{ identity: "agent:allegro", command: ["node", AGENT] }],
        },
      ]);
      expect((await run("apply", "--now", T(0))).exitCode).toBe(0);
      const dir = live("c");
      mkdirSync(path.join(dir, "project", "src"), { recursive: true });
      writeFileSync(path.join(dir, "project", "src", "main.ts"), "export const x = 1;\n");
      writeFileSync(path.join(dir, "shared", "artifacts", "report.bin"), Buffer.from([0, 1, 2, 255]));
      writeFileSync(path.join(dir, "home", "allegro", "memory.md"), "remember this");
      const r = await run("checkpoint", "c", "--json", "--now", T(1));
      expect(r.exitCode, r.stderr).toBe(0);
      const name = JSON.parse(r.stdout).checkpoint as string;
      expect(name).toBe(`20300101T000100Z${ext}`);
      const tar = path.join(dir, ".lazarus", "checkpoints", name);
      const manifest = JSON.parse(readFileSync(tar.replace(ext, ".manifest.json"), "utf8")) as Manifest;
      expect(manifest).toMatchObject({
        compression,
        archive: name,
        archiveSha256: sha(tar),
        archiveSize: statSync(tar).size,
      });
      expect(manifest.files.map((f) => f.path)).toEqual(
        expect.arrayContaining([
          "project/src/main.ts",
          "shared/artifacts/report.bin",
          "home/allegro/memory.md",
          "shared/scratchpad.md",
        ]),
      );
      const out = tempDir("lazarus-extract-");
      dirs.push(out);
      await execa("tar", [`--${compression}`, "-xf", tar, "-C", out]);
      for (const f of manifest.files) {
        expect(sha(path.join(out, f.path)), f.path).toBe(f.sha256);
        expect(statSync(path.join(out, f.path)).size).toBe(f.size);
      }
      expect(readFileSync(path.join(out, "project", "src", "main.ts"), "utf8")).toBe("export const x = 1;\n");
      expect(readRecord(dir).state).toBe("active");
      const m = readRecord(dir).members[0]!;
      expect(procState(m.pid as number)).not.toBe("T"); // thawed after the snapshot
    },
  );

  it("keep only the newest `keep`", async () => {
    const { run, live } = setup([
      {
        name: "k",
        extra: "  checkpoint: {keep: 2, compression: gzip}",
        members: [{ identity: "human:h", role: "director" }],
      },
    ]);
    await run("apply", "--now", T(0));
    for (let i = 1; i <= 4; i++) expect((await run("checkpoint", "k", "--now", T(i))).exitCode).toBe(0);
    const files = readdirSync(path.join(live("k"), ".lazarus", "checkpoints")).sort();
    expect(files).toEqual([
      "20300101T000300Z.manifest.json",
      "20300101T000300Z.tar.gz",
      "20300101T000400Z.manifest.json",
      "20300101T000400Z.tar.gz",
    ]);
  });

  it("follow the schedule and precede every close; the close log lists them and the project's changes", async () => {
    const { run, live, state } = setup([
      {
        name: "s",
        extra: '  checkpoint: {schedule: "0 * * * *"}',
        members: [{ identity: "agent:allegro", command: ["node", AGENT] }],
      },
    ]);
    await run("apply", "--now", T(10));
    const project = path.join(live("s"), "project");
    await execa("git", ["init", "-q", project]);
    writeFileSync(path.join(project, "a.txt"), "a");
    await execa("git", ["-C", project, "add", "."]);
    // Commit dates follow the simulated clock (the cell was created at 00:10 by --now).
    await execa("git", ["-C", project, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first"], {
      env: { GIT_AUTHOR_DATE: T(20), GIT_COMMITTER_DATE: T(20) },
    });
    writeFileSync(path.join(project, "b.txt"), "uncommitted");
    expect((await run("plan", "--detailed-exitcode", "--now", T(59))).exitCode).toBe(0);
    const due = await run("plan", "--json", "--now", T(61));
    expect(JSON.parse(due.stdout).actions).toEqual([
      {
        cell: "s",
        action: "checkpoint",
        reason: 'schedule "0 * * * *" was due at 2030-01-01T01:00:00Z (last checkpoint none)',
      },
    ]);
    await run("apply", "--now", T(61));
    expect((await run("plan", "--detailed-exitcode", "--now", T(62))).exitCode).toBe(0);
    const close = await run("apply", "--now", T(5 * 60));
    expect(close.stdout).toMatch(/\* checkpoint +s +final checkpoint before close[\s\S]*- close +s/);
    const log = JSON.parse(readFileSync(path.join(state, "graveyard", "s", ".lazarus", "close.log"), "utf8"));
    expect(log.checkpoints).toHaveLength(2);
    expect(log.members).toEqual([expect.objectContaining({ identity: "agent:allegro", role: "executor" })]);
    expect(log.projectChanges).toMatchObject({
      source: "git",
      files: ["a.txt", "b.txt"],
      commits: [expect.stringMatching(/^[0-9a-f]{40} first$/)],
    });
  });

  it.each(["checkpoint:written", "checkpoint:tar-renamed"])(
    "leave nothing that looks whole after a crash at %s, and the next apply finishes",
    async (point) => {
      const { run, live, config, state } = setup([
        { name: "x", members: [{ identity: "agent:allegro", command: ["node", AGENT] }] },
      ]);
      await run("apply", "--now", T(0));
      const crashed = await lazarus(["checkpoint", "x", "--config", config, "--state-dir", state, "--now", T(1)], {
        env: { LAZARUS_FAILPOINT: point },
      });
      expect(crashed.signal).toBe("SIGKILL");
      const cps = path.join(live("x"), ".lazarus", "checkpoints");
      expect(await listCheckpoints(cps)).toEqual([]);
      expect(readRecord(live("x")).state).toBe("checkpointing");
      const m = readRecord(live("x")).members[0]!;
      const r = await run("apply", "--now", T(2));
      expect(r.stdout).toContain("resume interrupted checkpoint");
      expect(readRecord(live("x")).state).toBe("active");
      expect((await listCheckpoints(cps)).map((c) => c.name)).toEqual([`20300101T000200Z${EXT}`]);
      expect(readdirSync(cps).filter((f) => f.startsWith(".tmp-") || !/manifest|tar/.test(f))).toEqual([]);
      expect(readdirSync(cps)).toHaveLength(2);
      expect(procState(m.pid as number)).not.toBe("T");
    },
  );

  it("fail cleanly when the compressor dies: no hang, nothing that looks whole, members thawed", async () => {
    const { run, live, config, state } = setup([
      {
        name: "z",
        extra: "  checkpoint: {compression: zstd}",
        members: [{ identity: "agent:allegro", command: ["node", AGENT] }],
      },
    ]);
    await run("apply", "--now", T(0));
    writeFileSync(path.join(live("z"), "project", "big.txt"), "x".repeat(4 << 20)); // more than a pipe holds
    const bin = tempDir("lazarus-fakebin-");
    dirs.push(bin);
    writeFileSync(
      path.join(bin, "zstd"),
      "#!/bin/sh\nhead -c 1000 >/dev/null; echo 'zstd: disk on fire' >&2; exit 3\n",
      { mode: 0o755 },
    );
    const r = await lazarus(["checkpoint", "z", "--config", config, "--state-dir", state, "--now", T(1)], {
      env: { PATH: `${bin}:${process.env.PATH}` },
      timeoutMs: 30_000,
    });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("zstd exited 3: zstd: disk on fire");
    expect(await listCheckpoints(path.join(live("z"), ".lazarus", "checkpoints"))).toEqual([]);
    expect(procState(readRecord(live("z")).members[0]!.pid as number)).not.toBe("T");
    expect((await run("checkpoint", "z", "--now", T(2))).exitCode).toBe(0); // the real zstd works
  });

  it("let a cell created again after it was archived start from its last checkpoint", async () => {
    const { run, live, config } = setup([{ name: "r", members: [{ identity: "human:h", role: "director" }] }]);
    await run("apply", "--now", T(0));
    writeFileSync(path.join(live("r"), "project", "notes.md"), "carried over");
    writeFileSync(
      path.join(config, "cells.d", "r.yaml"),
      cellYaml({ name: "r", state: "closed", members: [{ identity: "human:h", role: "director" }] }),
    );
    await run("apply", "--now", T(10)); // final checkpoint, close
    await run("apply", "--now", T(60)); // scrub: the checkpoint goes to the archive
    expect(existsSync(live("r"))).toBe(false);
    writeFileSync(
      path.join(config, "cells.d", "r.yaml"),
      cellYaml({ name: "r", extra: "  restoreFrom: last", members: [{ identity: "human:h", role: "director" }] }),
    );
    const p = await run("plan", "--now", T(70));
    expect(p.stdout).toContain(`from checkpoint 20300101T001000Z${EXT}`);
    expect((await run("apply", "--now", T(70))).exitCode).toBe(0);
    expect(readFileSync(path.join(live("r"), "project", "notes.md"), "utf8")).toBe("carried over");
    expect(readRecord(live("r")).restoredFrom).toBe(`20300101T001000Z${EXT}`);
  });
});

describe("downed members", () => {
  it("down a member whose heartbeat goes stale even though its process lives, and restart it", async () => {
    const { run, live } = setup([
      { name: "hb", members: [{ identity: "agent:allegro", command: ["node", AGENT], heartbeat: "2m" }] },
    ]);
    await run("apply", "--now", T(0));
    const hb = path.join(live("hb"), "home", "allegro", ".heartbeat");
    writeFileSync(hb, "beat");
    const { utimesSync } = await import("node:fs");
    const beat = new Date(T(1));
    utimesSync(hb, beat, beat);
    expect((await run("plan", "--detailed-exitcode", "--now", T(3))).exitCode).toBe(0);
    const before = readRecord(live("hb")).members[0]!;
    const r = await run("apply", "--now", T(4));
    expect(r.stdout).toContain("heartbeat stale");
    expect(isAlive(before.pid, before.startTime)).toBe(false);
    expect(readRecord(live("hb")).state).toBe("downed");
    const again = await run("apply", "--now", new Date(Date.parse(T(4)) + 10_000).toISOString());
    expect(again.stdout).toMatch(/restart[\s\S]*revive/);
    const after = readRecord(live("hb")).members[0]!;
    expect(isAlive(after.pid, after.startTime)).toBe(true);
  });

  it("close a cell that stays downed past its downedTimeout as abandoned", async () => {
    const { run, live, state } = setup([
      {
        name: "ab",
        extra: "  downedTimeout: 30m",
        members: [{ identity: "agent:allegro", command: ["node", AGENT], restart: "never" }],
      },
    ]);
    await run("apply", "--now", T(0));
    const m = readRecord(live("ab")).members[0]!;
    process.kill(-(m.pid as number), "SIGKILL");
    await waitFor(() => !isAlive(m.pid, m.startTime));
    await run("apply", "--now", T(1));
    expect(readRecord(live("ab")).state).toBe("downed");
    expect((await run("plan", "--now", T(20))).stdout).toContain("closes as abandoned at 2030-01-01T00:31:00Z");
    const r = await run("apply", "--now", T(31));
    expect(r.stdout).toContain("abandoned");
    expect(readRecord(path.join(state, "graveyard", "ab")).state).toBe("closed");
  });

  it("bring in a substitute with the last checkpoint and an empty home while its predecessor is down, and let it leave after", async () => {
    const { run, live } = setup([
      {
        name: "sub",
        extra: "  policy: {allowSubstitutes: true}",
        members: [
          { identity: "agent:allegro", command: ["node", AGENT] },
          { identity: "agent:ezra", role: "substitute", command: ["node", AGENT], replaces: "agent:allegro" },
        ],
      },
    ]);
    await run("apply", "--now", T(0));
    const dir = live("sub");
    expect(readRecord(dir).members.map((m) => m.identity)).toEqual(["agent:allegro"]);
    writeFileSync(path.join(dir, "project", "plan.md"), "v1");
    await run("checkpoint", "sub", "--now", T(1));
    writeFileSync(path.join(dir, "project", "plan.md"), "v2, half-broken");
    writeFileSync(path.join(dir, "home", "allegro", "private-memory.md"), "allegro's own");
    const allegro = readRecord(dir).members[0]!;
    process.kill(-(allegro.pid as number), "SIGKILL");
    await waitFor(() => !isAlive(allegro.pid, allegro.startTime));
    const r = await run("apply", "--now", T(2));
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain("substitute agent:ezra stands in for agent:allegro");
    const ezra = readRecord(dir).members.find((m) => m.identity === "agent:ezra")!;
    expect(isAlive(ezra.pid, ezra.startTime)).toBe(true);
    expect(readFileSync(path.join(dir, "project", "plan.md"), "utf8")).toBe("v1");
    const ezraHome = path.join(dir, "home", "ezra");
    await waitFor(() => existsSync(path.join(ezraHome, "env.json")));
    expect(readdirSync(ezraHome).filter((f) => ![".hermes", ".tmp", "env.json"].includes(f))).toEqual([]);
    // The state before the rollback is kept in a safety checkpoint.
    const cps = await listCheckpoints(path.join(dir, ".lazarus", "checkpoints"));
    expect(cps).toHaveLength(2);
    const out = tempDir("lazarus-extract-");
    dirs.push(out);
    await execa("tar", ["-xf", cps[1]!.file, "-C", out]); // GNU tar finds the compression itself
    expect(readFileSync(path.join(out, "project", "plan.md"), "utf8")).toBe("v2, half-broken");
    // allegro restarts after its backoff, and the substitute leaves in the same apply.
    const back = await run("apply", "--now", new Date(Date.parse(T(2)) + 10_000).toISOString());
    // The predecessor restarts first, then the substitute leaves.
    expect(back.stdout).toMatch(
      /restart +sub +agent:allegro: restart after backoff 10s[^\n]*\n[^\n]*remove-member +sub +agent:allegro is up again, so substitute agent:ezra leaves/,
    );
    expect(isAlive(ezra.pid, ezra.startTime)).toBe(false);
  });
});

describe("invitations", () => {
  it("mint a private token, accept it once, revoke what is not accepted in 15 minutes, and never print a token", async () => {
    const { run, live, state, outputs } = setup([
      {
        name: "inv",
        members: [
          { identity: "human:alexander", role: "director" },
          { identity: "human:reviewer", role: "observer" },
        ],
      },
    ]);
    await run("apply", "--now", T(0));
    const tokenFile = (who: string) => path.join(live("inv"), ".lazarus", "invites", `${who}.token`);
    expect(statSync(tokenFile("alexander")).mode & 0o777).toBe(0o600);
    const tokens = ["alexander", "reviewer"].map((w) => readFileSync(tokenFile(w), "utf8").trim());
    expect(tokens[0]).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const status = await run("status", "inv", "--json", "--now", T(1));
    expect(JSON.parse(status.stdout).cells[0].members.map((m: { status: string }) => m.status)).toEqual([
      "invited",
      "invited",
    ]);

    const wrong = await run("accept", "inv", "human:alexander", "--token", "not-the-token", "--now", T(5));
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stderr).toContain("the token does not match");
    const ok = await lazarus(
      ["accept", "inv", "human:alexander", "--token", "-", "--config", ".", "--state-dir", state, "--now", T(5)],
      { input: `${tokens[0]}\n` },
    );
    outputs.push(ok.stdout, ok.stderr);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(existsSync(tokenFile("alexander"))).toBe(false);
    expect((await run("accept", "inv", "human:alexander", "--token", tokens[0]!, "--now", T(6))).exitCode).toBe(1);

    expect((await run("plan", "--detailed-exitcode", "--now", T(14))).exitCode).toBe(0);
    const p = await run("plan", "--now", T(15));
    expect(p.stdout).toContain("invitation of human:reviewer expired at 2030-01-01T00:15:00Z");
    await run("apply", "--now", T(15));
    const late = await run("accept", "inv", "human:reviewer", "--token", tokens[1]!, "--now", T(16));
    expect(late.exitCode).toBe(1);
    expect(late.stderr).toContain("no open invitation (status revoked)");
    const final = readRecord(live("inv")).members.map((m) => `${m.identity}=${m.status}`);
    expect(final).toEqual(["human:alexander=joined", "human:reviewer=revoked"]);
    expect(existsSync(tokenFile("reviewer"))).toBe(false);

    const files: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p2 = path.join(d, e.name);
        if (e.isDirectory()) walk(p2);
        else if (e.isFile()) files.push(p2);
      }
    };
    walk(state);
    for (const f of files) for (const t of tokens) expect(readFileSync(f, "utf8"), f).not.toContain(t);
    for (const o of outputs) for (const t of tokens) expect(o).not.toContain(t);
  });

  it("shows a role change as a removal plus a new invitation", async () => {
    const { run, config } = setup([{ name: "role", members: [{ identity: "human:alexander", role: "director" }] }]);
    await run("apply", "--now", T(0));
    writeFileSync(
      path.join(config, "cells.d", "role.yaml"),
      cellYaml({ name: "role", members: [{ identity: "human:alexander", role: "observer" }] }),
    );
    const p = await run("plan", "--json", "--now", T(1));
    expect(
      JSON.parse(p.stdout).actions.map((a: { action: string; reason: string }) => `${a.action}: ${a.reason}`),
    ).toEqual([
      "remove-member: role of human:alexander changed director → observer; roles are immutable, so it leaves and is invited again",
      "invite: human:alexander re-invited as observer",
    ]);
  });
});
