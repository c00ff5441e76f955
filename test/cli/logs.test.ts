// lazarus logs: members' output through the log pump, with real members (shell scripts) of the
// process backend: interleaving with prefixes, --tail, --since, --timestamps, --json, -f,
// rotation bounding the disk use, a killed pump or Lazarus, closed and scrubbed cells.
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { procInfo } from "../../src/host/proc.js";
import { CLI, cellYaml, cleanup, configDir, lazarus, readRecord, tempDir, waitFor, type CellOpts } from "../helpers.js";

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));
const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();
const HOUR = 60;

function setup(cells: CellOpts[]) {
  const state = tempDir("lazarus-logs-state-");
  const config = configDir(Object.fromEntries(cells.map((c) => [`cells.d/${c.name}.yaml`, cellYaml(c)])));
  dirs.push(state, config);
  const run = (...args: string[]) =>
    lazarus([...args, "--config", config, "--state-dir", state], { timeoutMs: 60_000 });
  const logs = (...args: string[]) => lazarus(["logs", ...args, "--state-dir", state], { timeoutMs: 60_000 });
  const live = (name: string) => path.join(state, "cells", name);
  const logDir = (name: string) => path.join(live(name), ".lazarus", "logs");
  return { state, config, run, logs, live, logDir };
}

const sh = (script: string) => ["sh", "-c", script];
// Wait until a member's own log holds a text (the pump has stamped it), then a little more so the
// next line cannot share its millisecond.
const waitLog = (home: string, text: string) =>
  `until grep -q '${text}' "$CELL_HOME/.lazarus/logs/${home}.log" 2>/dev/null; do sleep 0.05; done; sleep 0.02`;
// Whether a file holds a text, read as it is now (a log may be rotated away between two calls).
const holds = (file: string, text: string) => {
  try {
    return readFileSync(file, "utf8").includes(text);
  } catch {
    return false;
  }
};
const waitFile = (name: string) => `until [ -e "$CELL_HOME/shared/${name}" ]; do sleep 0.05; done`;
const STAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe("lazarus logs", () => {
  // one: A1, then (after two's B1) A2; two: B1 after A1. In time order: A1, B1, A2.
  const members = [
    {
      identity: "agent:one",
      command: sh(`echo A1; ${waitLog("two", "B1")}; echo A2 >&2; ${waitFile("more")}; echo A3; exec sleep 600`),
    },
    { identity: "agent:two", command: sh(`${waitLog("one", "A1")}; echo B1; exec sleep 600`) },
  ];
  const s = setup([{ name: "duo", members }]);

  it("interleaves the members in time order with prefixes; one member's alone; tail, since, timestamps, json", async () => {
    expect((await s.run("apply", "--yes")).exitCode).toBe(0);
    await waitFor(
      () =>
        existsSync(path.join(s.logDir("duo"), "one.log")) &&
        readFileSync(path.join(s.logDir("duo"), "one.log"), "utf8").includes("A2"),
      30_000,
    );
    const all = await s.logs("duo");
    expect(all.exitCode, all.stderr).toBe(0);
    expect(all.stdout).toBe("agent:one | A1\nagent:two | B1\nagent:one | A2"); // stderr (A2) is in the log too
    const one = await s.logs("duo", "agent:one");
    expect(one.stdout).toBe("A1\nA2");
    expect((await s.logs("duo", "one")).stdout).toBe("A1\nA2"); // its home name works as well
    expect((await s.logs("duo", "--tail", "1")).stdout).toBe("agent:two | B1\nagent:one | A2"); // the last line of each
    expect((await s.logs("duo", "--since", "2099-01-01T00:00:00Z")).stdout).toBe("");
    expect((await s.logs("duo", "--since", "2099-01-01T00:00:00Z")).stderr).toContain("No logs for cell duo since");
    expect((await s.logs("duo", "--since", "1h")).stdout).toBe(all.stdout);
    const stamped = (await s.logs("duo", "one", "--timestamps")).stdout
      .trim()
      .split("\n")
      .map((l) => l.split(" "));
    expect(stamped.map((p) => p[1])).toEqual(["A1", "A2"]);
    for (const p of stamped) expect(p[0]).toMatch(STAMP);
    // --since the time of B1: A1 (written before it) is left out
    const b1 = stamped.length && (await s.logs("duo", "two", "-t")).stdout.split(" ")[0]!;
    expect((await s.logs("duo", "--since", b1 as string)).stdout).toBe("agent:two | B1\nagent:one | A2");
    const json = (await s.logs("duo", "--json")).stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { time: string; cell: string; member: string; line: string });
    expect(json.map((j) => [j.cell, j.member, j.line])).toEqual([
      ["duo", "agent:one", "A1"],
      ["duo", "agent:two", "B1"],
      ["duo", "agent:one", "A2"],
    ]);
    expect(json[0]!.time).toMatch(STAMP);
  });

  it("names the members when the one asked for does not exist, and the cells when the cell does not", async () => {
    const r = await s.logs("duo", "agent:nobody");
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("cell duo has no member agent:nobody; its members: agent:one, agent:two");
    const c = await s.logs("nosuch");
    expect(c.exitCode).toBe(1);
    expect(c.stderr).toContain("no cell nosuch in");
    const bad = await s.logs("duo", "--since", "soon");
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toContain('--since "soon"');
  });

  it("follows: a line written later appears, prefixed; SIGTERM ends it", async () => {
    const follower = execa("node", [CLI, "logs", "duo", "-f", "--state-dir", s.state], {
      reject: false,
      env: { NO_COLOR: "1" },
    });
    let seen = "";
    follower.stdout?.on("data", (d: Buffer) => (seen += d.toString()));
    try {
      await waitFor(() => seen.includes("A2"), 30_000); // it has read what is there
      writeFileSync(path.join(s.live("duo"), "shared", "more"), "");
      await waitFor(() => seen.includes("A3"), 30_000);
      expect(seen).toBe("agent:one | A1\nagent:two | B1\nagent:one | A2\nagent:one | A3\n");
    } finally {
      follower.kill("SIGTERM");
    }
    expect((await follower).exitCode).toBe(0);
  });

  it("keeps reading a closed cell's logs from the graveyard, and a scrubbed one's from the archive", async () => {
    const c = setup([
      { name: "gone", members: [{ identity: "agent:solo", command: sh("echo last-words; exec sleep 600") }] },
    ]);
    expect((await c.run("apply", "--yes", "--now", T(0))).exitCode).toBe(0);
    await waitFor(
      () =>
        existsSync(path.join(c.logDir("gone"), "solo.log")) &&
        readFileSync(path.join(c.logDir("gone"), "solo.log"), "utf8").includes("last-words"),
      30_000,
    );
    const closed = await c.run("apply", "--yes", "--now", T(5 * HOUR)); // ttl 4h: closed
    expect(closed.exitCode, closed.stdout + closed.stderr).toBe(0);
    expect(existsSync(path.join(c.state, "graveyard", "gone"))).toBe(true);
    expect((await c.logs("gone")).stdout).toBe("agent:solo | last-words");
    const scrubbed = await c.run("apply", "--yes", "--now", T(6 * HOUR)); // grace 30m: scrubbed, archived
    expect(scrubbed.exitCode, scrubbed.stdout + scrubbed.stderr).toBe(0);
    expect(existsSync(path.join(c.state, "graveyard", "gone"))).toBe(false);
    expect((await c.logs("gone", "solo")).stdout).toBe("last-words");
  });
});

describe("a member's control characters", () => {
  const s = setup([
    {
      name: "esc",
      members: [
        { identity: "agent:tricky", command: sh(String.raw`printf 'real\033[2K\rforged\ttab\n'; exec sleep 600`) },
      ],
    },
  ]);
  const onTty = (...args: string[]) =>
    execa("script", ["-qec", ["node", CLI, "logs", ...args, "--state-dir", s.state].join(" "), "/dev/null"], {
      reject: false,
      env: { TERM: "xterm", NO_COLOR: "1", PATH: process.env.PATH ?? "" },
      extendEnv: false,
    });

  it("are shown as \\xNN on a terminal, as written with --raw or through a pipe", async () => {
    expect((await s.run("apply", "--yes")).exitCode).toBe(0);
    await waitFor(() => holds(path.join(s.logDir("esc"), "tricky.log"), "forged"), 30_000);
    const shown = await onTty("esc");
    expect(shown.stdout).toContain("real\\x1b[2K\\x0dforged\ttab"); // escaped, the tab kept
    expect(shown.stdout).not.toContain("\x1b[2K");
    const raw = await onTty("esc", "--raw");
    expect(raw.stdout).toContain("real\x1b[2K\rforged");
    expect((await s.logs("esc")).stdout).toBe("agent:tricky | real\x1b[2K\rforged\ttab"); // piped: the bytes as written
    expect(JSON.parse((await s.logs("esc", "--json")).stdout).line).toBe("real\x1b[2K\rforged\ttab");
  });
});

describe("log rotation", () => {
  it("bounds a member that writes a lot fast to maxSize × (keep + 1), keeping the newest lines whole", async () => {
    // ~8 MB in lines of at most 100 bytes, one 40 KiB line without a break, then a last line.
    const writer = `i=0; while [ $i -lt 80 ]; do head -c 100000 /dev/zero | tr '\\0' x | fold -w 99; echo; i=$((i+1)); done; head -c 40960 /dev/zero | tr '\\0' y; echo; echo END-OF-BURST; exec sleep 600`;
    const r = setup([
      {
        name: "chatty",
        extra: "  logs:\n    maxSize: 64Ki\n    keep: 2",
        members: [{ identity: "agent:loud", command: sh(writer) }],
      },
    ]);
    expect((await r.run("apply", "--yes")).exitCode).toBe(0);
    const log = path.join(r.logDir("chatty"), "loud.log");
    await waitFor(() => holds(log, "END-OF-BURST"), 120_000);
    const files = readdirSync(r.logDir("chatty"))
      .filter((f) => f.startsWith("loud.log"))
      .sort();
    expect(files).toEqual(["loud.log", "loud.log.1", "loud.log.2"]);
    let total = 0;
    for (const f of files) {
      const size = statSync(path.join(r.logDir("chatty"), f)).size;
      expect(size).toBeLessThanOrEqual(64 * 1024);
      total += size;
    }
    expect(total).toBeLessThanOrEqual(64 * 1024 * 3);
    // Every record is stamped and whole; the long line was cut into records that each fit.
    const text = files.map((f) => readFileSync(path.join(r.logDir("chatty"), f), "utf8")).join("");
    for (const line of text.trim().split("\n"))
      expect(line).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z (x{1,99}|y{1,16384}|END-OF-BURST)$/);
    const shown = await r.logs("chatty", "loud", "--tail", "1");
    expect(shown.stdout).toBe("END-OF-BURST");
  });

  it("takes the host's default without spec.logs (LAZARUS_LOG_MAX_SIZE, LAZARUS_LOG_KEEP; keep 0 empties the file)", async () => {
    const r = setup([
      {
        name: "hostwide",
        members: [
          {
            identity: "agent:loud",
            command: sh(
              "i=0; while [ $i -lt 20 ]; do head -c 10000 /dev/zero | tr '\\0' x | fold -w 99; echo; i=$((i+1)); done; echo END-OF-BURST; exec sleep 600",
            ),
          },
        ],
      },
    ]);
    const applied = await lazarus(["apply", "--yes", "--config", r.config, "--state-dir", r.state], {
      env: { LAZARUS_LOG_MAX_SIZE: "16Ki", LAZARUS_LOG_KEEP: "0" },
      timeoutMs: 60_000,
    });
    expect(applied.exitCode, applied.stderr).toBe(0);
    const log = path.join(r.logDir("hostwide"), "loud.log");
    await waitFor(() => holds(log, "END-OF-BURST"), 60_000);
    expect(readdirSync(r.logDir("hostwide")).filter((f) => f.startsWith("loud.log"))).toEqual(["loud.log"]);
    expect(statSync(log).size).toBeLessThanOrEqual(16 * 1024);
    const bad = await lazarus(["apply", "--yes", "--config", r.config, "--state-dir", r.state], {
      env: { LAZARUS_LOG_MAX_SIZE: "1Ki" },
    });
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toContain('LAZARUS_LOG_MAX_SIZE "1Ki" is not a size of at least 16Ki');
  });

  it("refuses a maxSize under 16Ki at its line; a changed spec.logs is an update that restarts nobody", async () => {
    const r = setup([
      {
        name: "tuned",
        extra: "  logs:\n    maxSize: 1Ki",
        members: [{ identity: "agent:a", command: sh("exec sleep 600") }],
      },
    ]);
    const v = await lazarus(["validate", "--config", r.config]);
    expect(v.exitCode).toBe(1);
    expect(v.stdout + v.stderr).toMatch(/tuned\.yaml:\d+.*maxSize is 1024 bytes, less than the 16Ki minimum/);
    writeFileSync(
      path.join(r.config, "cells.d", "tuned.yaml"),
      cellYaml({
        name: "tuned",
        extra: "  logs:\n    maxSize: 1Mi",
        members: [{ identity: "agent:a", command: sh("exec sleep 600") }],
      }),
    );
    expect((await r.run("apply", "--yes")).exitCode).toBe(0);
    const pid = readRecord(r.live("tuned")).members[0]!.pid;
    writeFileSync(
      path.join(r.config, "cells.d", "tuned.yaml"),
      cellYaml({
        name: "tuned",
        extra: "  logs:\n    maxSize: 2Mi\n    keep: 1",
        members: [{ identity: "agent:a", command: sh("exec sleep 600") }],
      }),
    );
    const changed = await r.run("apply", "--yes");
    expect(changed.exitCode, changed.stderr).toBe(0);
    expect(changed.stdout).toContain("logs changed");
    expect(changed.stdout).not.toContain("restart");
    const rec = readRecord(r.live("tuned"));
    expect(rec.members[0]!.pid).toBe(pid);
    expect(rec.logs).toEqual({ maxBytes: 2 * 1024 * 1024, keep: 1 });
  });

  it("a member whose pump is killed gets SIGPIPE on its next write (it never hangs) and is restarted with a new pump", async () => {
    const r = setup([
      { name: "piped", members: [{ identity: "agent:talker", command: sh("while :; do echo tick; sleep 0.1; done") }] },
    ]);
    expect((await r.run("apply", "--yes")).exitCode).toBe(0);
    const log = path.join(r.logDir("piped"), "talker.log");
    await waitFor(() => holds(log, "tick"), 30_000);
    const pump = pumpOf(log);
    expect(pump).toBeGreaterThan(0);
    process.kill(pump as number, "SIGKILL"); // the pump this test's apply started
    const exitFile = path.join(r.logDir("piped"), "talker.exit");
    await waitFor(() => existsSync(exitFile), 30_000);
    expect(readFileSync(exitFile, "utf8").trim()).toBe("141"); // 128 + SIGPIPE
    const m = readRecord(r.live("piped")).members[0]!;
    await waitFor(() => (procInfo(m.pid as number)?.state ?? "Z") === "Z", 30_000);
    const plan = await r.run("plan");
    expect(plan.stdout).toContain("exited with code 141");
  });

  it("never takes a pump that outlives its member (an escaped child holds the pipe) for the member", async () => {
    const r = setup([
      {
        name: "escape",
        members: [
          { identity: "agent:runaway", command: sh("setsid sleep 600 & echo left-a-child; exit 3"), restart: "never" },
        ],
      },
    ]);
    const crashed = await lazarus(["apply", "--yes", "--config", r.config, "--state-dir", r.state], {
      env: { LAZARUS_FAILPOINT: "member:after-spawn" },
      timeoutMs: 60_000,
    });
    expect(crashed.signal).toBe("SIGKILL"); // the record still says "starting": the next run looks for it by its spawn id
    const exitFile = path.join(r.logDir("escape"), "runaway.exit");
    await waitFor(() => existsSync(exitFile), 30_000);
    const log = path.join(r.logDir("escape"), "runaway.log");
    await waitFor(() => holds(log, "left-a-child"), 30_000);
    const pump = pumpOf(log);
    expect(pump).toBeGreaterThan(0); // still draining: the escaped sleep holds the pipe
    const resumed = await r.run("apply", "--yes"); // resumes the interrupted start: finds nothing by the spawn id, starts anew
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    const m = readRecord(r.live("escape")).members[0]!;
    expect(m.pid).not.toBe(pump);
    expect(readFileSync(`/proc/${pump}/cmdline`, "utf8")).toContain("log-pump"); // the old pump, still there, not adopted
  });

  it("a Lazarus killed right after the spawn leaves the member and its pump running, and the output logged", async () => {
    const r = setup([
      {
        name: "orphan",
        members: [
          { identity: "agent:talker", command: sh(`echo first; ${waitFile("go")}; echo second; exec sleep 600`) },
        ],
      },
    ]);
    const crashed = await lazarus(["apply", "--yes", "--config", r.config, "--state-dir", r.state], {
      env: { LAZARUS_FAILPOINT: "member:after-spawn" },
      timeoutMs: 60_000,
    });
    expect(crashed.signal).toBe("SIGKILL");
    const log = path.join(r.logDir("orphan"), "talker.log");
    await waitFor(() => holds(log, "first"), 30_000);
    writeFileSync(path.join(r.live("orphan"), "shared", "go"), "");
    await waitFor(() => holds(log, "second"), 30_000);
    expect((await r.run("apply", "--yes")).exitCode).toBe(0); // adopts the member it started
    expect((await r.logs("orphan")).stdout).toBe("agent:talker | first\nagent:talker | second");
  });
});

// The pid of the log pump writing this log (its argv names the file), found in /proc.
function pumpOf(log: string): number | undefined {
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmdline = readFileSync(`/proc/${e}/cmdline`, "utf8");
      const argv = cmdline.split("\0");
      // node dist/backends/log-pump.js LOG …, or the Perl pump forked by the spawner ("lazarus log-pump LOG")
      if ((argv[1]?.endsWith("log-pump.js") && argv[2] === log) || argv[0] === `lazarus log-pump ${log}`)
        return Number(e);
    } catch {
      // gone
    }
  }
  return undefined;
}
