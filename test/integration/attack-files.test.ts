// A member of the process backend attacks through the files Lazarus reads and writes in its cell:
// planted symbolic links, FIFOs and garbage. Each test fails if the attack works.
import {
  existsSync,
  lstatSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
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

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));
const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();
const HOUR = 60;

function setup(cells: CellOpts[]) {
  const state = tempDir("lazarus-state-");
  const config = configDir(Object.fromEntries(cells.map((c) => [`cells.d/${c.name}.yaml`, cellYaml(c)])));
  const outside = tempDir("lazarus-outside-");
  dirs.push(state, config, outside);
  // Every run is killed after 20 s: an attack that makes Lazarus hang fails the test.
  const run = (...args: string[]) =>
    lazarus([...args, "--config", config, "--state-dir", state], { timeoutMs: 20_000 });
  const live = (name: string) => path.join(state, "cells", name);
  return { state, config, outside, run, live };
}

// Names and contents of every file in a directory (not recursive).
const listing = (dir: string) =>
  Object.fromEntries(
    readdirSync(dir)
      .sort()
      .map((f) => [f, readFileSync(path.join(dir, f), "utf8")]),
  );
const mkfifo = (p: string) => execa("mkfifo", [p]);
const planted = (dir: string, name: string) => readdirSync(dir).filter((f) => f.startsWith(`${name}.planted-`));

describe("a member's planted links and FIFOs", () => {
  it("never let the final checkpoint be written through a linked .lazarus/checkpoints, nor rotation delete outside", async () => {
    const { run, live, state, outside } = setup([{ name: "cp", extra: "  checkpoint:\n    keep: 1" }]);
    expect((await run("apply", "--now", T(0))).exitCode).toBe(0);
    writeFileSync(path.join(outside, "20200101T000000Z.tar.gz"), "the operator's file");
    writeFileSync(path.join(outside, "20200101T000000Z.manifest.json"), "{}");
    writeFileSync(path.join(outside, ".tmp-notes"), "also the operator's");
    const before = listing(outside);
    const cps = path.join(live("cp"), ".lazarus", "checkpoints");
    rmSync(cps, { recursive: true });
    symlinkSync(outside, cps);
    const r = await run("apply", "--now", T(5 * HOUR)); // ttl 4h expired: final checkpoint, then close
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(listing(outside)).toEqual(before);
    const meta = path.join(state, "graveyard", "cp", ".lazarus");
    expect(lstatSync(path.join(meta, "checkpoints")).isDirectory()).toBe(true);
    expect(readdirSync(path.join(meta, "checkpoints")).filter((f) => /\.tar\.(gz|zst)$/.test(f))).toHaveLength(1);
    const aside = planted(meta, "checkpoints");
    expect(aside).toHaveLength(1);
    expect(lstatSync(path.join(meta, aside[0]!)).isSymbolicLink()).toBe(true);
    expect(readFileSync(path.join(meta, "decisions.jsonl"), "utf8")).toMatch(
      /"decision":"planted-moved-aside","path":".lazarus\/checkpoints"/,
    );
  });

  it("never append a member's output to an outside file through a linked member log", async () => {
    const member = (v: string) => [
      { identity: "agent:allegro", command: ["sh", "-c", `echo hello-from-member; exec node ${AGENT}`], env: { V: v } },
    ];
    const { run, live, config, outside } = setup([{ name: "lg", members: member("1") }]);
    expect((await run("apply", "--now", T(0))).exitCode).toBe(0);
    const log = path.join(live("lg"), ".lazarus", "logs", "allegro.log");
    await waitFor(() => readFileSync(log, "utf8").includes("hello-from-member"));
    const target = path.join(outside, "target.log");
    writeFileSync(target, "operator's log\n");
    unlinkSync(log);
    symlinkSync(target, log);
    writeFileSync(path.join(config, "cells.d", "lg.yaml"), cellYaml({ name: "lg", members: member("2") })); // env change: restart
    const r = await run("apply", "--now", T(1));
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain("restart");
    await waitFor(
      () =>
        existsSync(log) && !lstatSync(log).isSymbolicLink() && readFileSync(log, "utf8").includes("hello-from-member"),
    );
    expect(readFileSync(target, "utf8")).toBe("operator's log\n");
    expect(planted(path.dirname(log), "allegro.log")).toHaveLength(1);
  });

  it("never overwrite an outside file through a linked close log", async () => {
    const { run, live, state, outside } = setup([{ name: "cl" }]);
    expect((await run("apply", "--now", T(0))).exitCode).toBe(0);
    const precious = path.join(outside, "precious.txt");
    writeFileSync(precious, "do not overwrite");
    symlinkSync(precious, path.join(live("cl"), ".lazarus", "close.log"));
    expect((await run("apply", "--now", T(5 * HOUR))).exitCode).toBe(0);
    expect(readFileSync(precious, "utf8")).toBe("do not overwrite");
    const closeLog = path.join(state, "graveyard", "cl", ".lazarus", "close.log");
    expect(lstatSync(closeLog).isFile()).toBe(true);
    expect(JSON.parse(readFileSync(closeLog, "utf8"))).toMatchObject({ cell: "cl" });
  });

  it("close and scrub a cell whose .lazarus/ holds FIFOs, archiving only regular files, without hanging", async () => {
    const { run, live, state } = setup([{ name: "ff" }]);
    expect((await run("apply", "--now", T(0))).exitCode).toBe(0);
    const meta = path.join(live("ff"), ".lazarus");
    await mkfifo(path.join(meta, "logs", "trap.fifo"));
    rmSync(path.join(meta, "decisions.jsonl"));
    await mkfifo(path.join(meta, "decisions.jsonl")); // appending to it would block forever
    symlinkSync("/etc/hostname", path.join(meta, "logs", "host.log"));
    const closed = await run("apply", "--now", T(5 * HOUR));
    expect(closed.exitCode, closed.stdout + closed.stderr).toBe(0);
    expect(existsSync(path.join(state, "graveyard", "ff"))).toBe(true);
    const scrubbed = await run("apply", "--now", T(6 * HOUR));
    expect(scrubbed.exitCode, scrubbed.stdout + scrubbed.stderr).toBe(0);
    expect(existsSync(path.join(state, "graveyard", "ff"))).toBe(false);
    const day = readdirSync(path.join(state, "archive"))[0]!;
    const logs = path.join(state, "archive", day, "ff", "logs");
    expect(readdirSync(logs)).toEqual(["allegro.log"]);
    expect(lstatSync(path.join(state, "archive", day, "ff", "decisions.jsonl")).isFile()).toBe(true);
    const scrub = readFileSync(path.join(state, "ledger.jsonl"), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .find((e) => e.action === "scrub");
    expect(scrub.details.skipped).toEqual([
      ".lazarus/logs/host.log: is a symbolic link",
      ".lazarus/logs/trap.fifo: is a FIFO",
    ]);
  });

  it("read a FIFO in place of a member's exit file as no exit status, with a warning, without hanging", async () => {
    const { run, live } = setup([{ name: "ex" }]);
    expect((await run("apply", "--now", T(0))).exitCode).toBe(0);
    const m = readRecord(live("ex")).members[0]!;
    process.kill(-(m.pid as number), "SIGKILL"); // the member this test started
    await waitFor(() => !isAlive(m.pid, m.startTime));
    await mkfifo(path.join(live("ex"), ".lazarus", "logs", "allegro.exit"));
    const r = await run("plan", "--now", T(1));
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toContain("exit file .lazarus/logs/allegro.exit is a FIFO, not a regular file; ignored");
    expect(r.stdout).toContain("member-down");
  });

  it("count a linked heartbeat as no heartbeat", async () => {
    const { run, live, outside } = setup([
      { name: "hb", members: [{ identity: "agent:allegro", command: ["node", AGENT], heartbeat: "2m" }] },
    ]);
    expect((await run("apply", "--now", T(0))).exitCode).toBe(0);
    const fresh = path.join(outside, "always-fresh");
    writeFileSync(fresh, "");
    utimesSync(fresh, new Date(T(2)), new Date(T(2)));
    symlinkSync(fresh, path.join(live("hb"), "home", "allegro", ".heartbeat"));
    const r = await run("plan", "--now", T(3));
    expect(r.stderr).toContain(
      "heartbeat home/allegro/.heartbeat is a symbolic link, not a regular file; counted as no heartbeat",
    );
    expect(r.stdout).toContain("heartbeat stale");
  });

  it("never write a member's portfolio through a linked home/<name>/.lazarus", async () => {
    const state = tempDir("lazarus-state-");
    const outside = tempDir("lazarus-outside-");
    const portfolio = (models: string[]) =>
      `apiVersion: lazarus/v1\nkind: Portfolio\nmetadata:\n  name: default\nspec:\n  models:\n${models.map((m) => `    - {model: ${m}, provider: p}`).join("\n")}\n`;
    const config = configDir({
      "portfolios/default.yaml": portfolio(["a"]),
      "cells.d/pf.yaml": cellYaml({ name: "pf" }),
    });
    dirs.push(state, outside, config);
    const run = (...args: string[]) =>
      lazarus([...args, "--config", config, "--state-dir", state], { timeoutMs: 20_000 });
    expect((await run("apply", "--now", T(0))).exitCode).toBe(0);
    const meta = path.join(state, "cells", "pf", "home", "allegro", ".lazarus");
    rmSync(meta, { recursive: true });
    symlinkSync(outside, meta);
    writeFileSync(path.join(config, "portfolios/default.yaml"), portfolio(["a", "b"]));
    const r = await run("apply", "--now", T(1));
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(readdirSync(outside)).toEqual([]);
    expect(JSON.parse(readFileSync(path.join(meta, "portfolio.json"), "utf8")).models).toHaveLength(2);
    expect(planted(path.dirname(meta), ".lazarus")).toHaveLength(1);
  });

  it("leave a cell whose cell.json is a link alone, never writing through it", async () => {
    const { run, live, outside } = setup([{ name: "rl" }]);
    expect((await run("apply", "--now", T(0))).exitCode).toBe(0);
    const record = path.join(live("rl"), ".lazarus", "cell.json");
    const copy = path.join(outside, "cell.json");
    writeFileSync(copy, readFileSync(record));
    const before = readFileSync(copy, "utf8");
    unlinkSync(record);
    symlinkSync(copy, record);
    const r = await run("apply", "--now", T(5 * HOUR));
    expect(r.stderr).toContain("is a symbolic link");
    expect(readFileSync(copy, "utf8")).toBe(before);
    expect(readdirSync(outside)).toEqual(["cell.json"]);
  });
});
