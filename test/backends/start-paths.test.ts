// The one way a member starts, run through both start paths on the same cases: the Perl spawner
// (src/backends/spawner.pl, the default where perl has its modules) and its fallback, node's own
// spawn with the node log pump (LAZARUS_SPAWNER=node, what a host without perl gets). Through the
// real CLI: `apply` and `watch` start a member the same way (a session leader writing into a pipe
// whose reader, the pump, is a session leader of its own with an empty environment, stamping and
// rotating the log); its exit code is recorded; the daemon learns of an exit at once, not at its
// next tick.
import { readFileSync, readdirSync, readlinkSync, statSync } from "node:fs";
import path from "node:path";
import { execa, type ResultPromise } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { procInfo } from "../../src/host/proc.js";
import { spawnerPerl } from "../../src/backends/spawner.js";
import { CLI, cellYaml, cleanup, configDir, lazarus, readRecord, tempDir, waitFor } from "../helpers.js";

const dirs: string[] = [];
const daemons: ResultPromise[] = [];
afterAll(async () => {
  for (const d of daemons) {
    d.kill("SIGKILL"); // a daemon this test started
    await d;
  }
  cleanup(...dirs);
});

const perl = spawnerPerl();
if (!perl) console.log("skipping the Perl start path: no perl with POSIX, Errno, Fcntl and Time::HiRes here");

const STAMPED = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z /;
const fd = (pid: number, n: number): string | undefined => {
  try {
    return readlinkSync(`/proc/${pid}/fd/${n}`);
  } catch {
    return undefined;
  }
};
const cmdline = (pid: number): string[] => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
const ppid = (pid: number): number => Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ")[1]);

// The member's command: the process of its group running `program` (the supervisor's child).
function commandOf(member: number, program: string): number | undefined {
  return readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .find((p) => procInfo(p)?.pgid === member && procInfo(p)?.state !== "Z" && cmdline(p)[0] === program);
}

// The live process reading a process's output pipe (the pump), or undefined.
function pumpOf(writer: number): number | undefined {
  const pipe = fd(writer, 1);
  if (!pipe?.startsWith("pipe:")) return undefined;
  return readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e) && Number(e) !== writer)
    .map(Number)
    .find((p) => fd(p, 0) === pipe && procInfo(p)?.state !== "Z");
}

describe.each([
  ["perl", perl !== undefined],
  ["node", true],
] as const)("members started through the %s start path", (how, available) => {
  if (!available) return it.skip("perl cannot run spawner.pl here", () => {});
  const env = { LAZARUS_SPAWNER: how, LAZARUS_LOG_MAX_SIZE: "16Ki", LAZARUS_LOG_KEEP: "1" };
  const state = tempDir(`lazarus-start-${how}-`);
  const lines =
    'i=0; while [ $i -lt 1000 ]; do echo "line $i ........................................................................................"; i=$((i+1)); done';
  const config = configDir({
    "cells.d/one.yaml": cellYaml({
      name: "one",
      members: [
        {
          identity: "agent:talk",
          restart: "never",
          command: ["sh", "-c", "echo hello; echo oops >&2; exec sleep 600"],
        },
        { identity: "agent:much", restart: "never", command: ["sh", "-c", `${lines}; exec sleep 600`] },
        { identity: "agent:three", restart: "never", command: ["sh", "-c", "echo bye; exit 3"] },
      ],
    }),
  });
  dirs.push(state, config);
  const logDir = path.join(state, "cells", "one", ".lazarus", "logs");
  const member = (home: string) => readRecord(path.join(state, "cells", "one")).members.find((m) => m.home === home);
  // The pump's own mark: a fork of the spawner named after the log, or node running log-pump.js.
  const isPump = (pid: number, log: string): boolean =>
    how === "perl"
      ? cmdline(pid)[0] === `lazarus log-pump ${log}`
      : cmdline(pid)[1]?.endsWith("log-pump.js") === true && cmdline(pid)[2] === log;

  it("apply starts each member a session leader writing into a pipe; its pump, alone in its session with an empty environment, stamps the log", async () => {
    const r = await lazarus(["apply", "--yes", "--config", config, "--state-dir", state], { env, timeoutMs: 60_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    const log = path.join(logDir, "talk.log");
    await waitFor(() => readFileSync(log, "utf8").includes("oops"), 20_000);
    expect(
      readFileSync(log, "utf8")
        .trimEnd()
        .split("\n")
        .map((l) => (STAMPED.test(l) ? l.replace(STAMPED, "") : `unstamped: ${l}`)),
    ).toEqual(["hello", "oops"]);
    const pid = member("talk")?.pid as number;
    expect(procInfo(pid)?.sid).toBe(pid);
    const command = commandOf(pid, "sleep") as number;
    expect(fd(command, 1)).toMatch(/^pipe:/);
    const pump = pumpOf(command) as number;
    expect(pump).toBeGreaterThan(0);
    expect(isPump(pump, log)).toBe(true);
    expect(procInfo(pump)?.sid).toBe(pump);
    expect(readFileSync(`/proc/${pump}/environ`, "utf8")).toBe("");
    expect(fd(pump, 1)).toBe(log);
  });

  it("the pump rotates a member's log within LAZARUS_LOG_MAX_SIZE × (LAZARUS_LOG_KEEP + 1), newest lines kept", async () => {
    const log = path.join(logDir, "much.log");
    // The file is briefly absent while the pump rotates it (renamed to .1, then made again).
    const has = (text: string): boolean => {
      try {
        return readFileSync(log, "utf8").includes(text);
      } catch {
        return false;
      }
    };
    await waitFor(() => has("line 999 "), 20_000);
    expect(
      readdirSync(logDir)
        .filter((f) => f.startsWith("much.log"))
        .sort(),
    ).toEqual(["much.log", "much.log.1"]);
    for (const f of ["much.log", "much.log.1"])
      expect(statSync(path.join(logDir, f)).size).toBeLessThanOrEqual(16 * 1024);
    for (const l of readFileSync(log, "utf8").trimEnd().split("\n")) expect(l).toMatch(/^\S+ line \d+ \.+$/);
  });

  it("records a member's exit code", async () => {
    await waitFor(() => readFileSync(path.join(logDir, "three.log"), "utf8").includes("bye"), 20_000);
    await waitFor(
      () =>
        procInfo(member("three")?.pid as number)?.state === undefined ||
        procInfo(member("three")?.pid as number)?.state === "Z",
      20_000,
    );
    const r = await lazarus(["apply", "--yes", "--config", config, "--state-dir", state], { env, timeoutMs: 60_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(member("three")).toMatchObject({ status: "exited", exitCode: 3 });
  });

  it("watch starts a member the same way, and learns of its exit at once (its tick is a year away)", async () => {
    const wstate = tempDir(`lazarus-start-watch-${how}-`);
    const wconfig = configDir({
      "cells.d/w.yaml": cellYaml({
        name: "w",
        members: [{ identity: "agent:w", command: ["sh", "-c", "echo up; exec sleep 600"] }],
      }),
    });
    dirs.push(wstate, wconfig);
    let out = "";
    const daemon = execa(
      "node",
      [
        CLI,
        "watch",
        "--config",
        wconfig,
        "--state-dir",
        wstate,
        "--tick",
        "0 0 0 1 1 *",
        "--resync",
        "1h",
        "--stop-timeout",
        "2000",
      ],
      { reject: false, env: { NO_COLOR: "1", ...env } },
    );
    daemons.push(daemon);
    daemon.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    daemon.stderr?.on("data", (d: Buffer) => (out += d.toString()));
    const rec = () => readRecord(path.join(wstate, "cells", "w")).members[0];
    await waitFor(() => out.includes('"msg":"watching"'), 30_000);
    await waitFor(() => rec()?.status === "running", 20_000);
    const log = path.join(wstate, "cells", "w", ".lazarus", "logs", "w.log");
    await waitFor(() => readFileSync(log, "utf8").includes("up"), 20_000);
    const pid = rec()?.pid as number;
    await waitFor(() => commandOf(pid, "sleep") !== undefined, 20_000);
    const pump = pumpOf(commandOf(pid, "sleep") as number) as number;
    expect(isPump(pump, log)).toBe(true);
    expect(procInfo(pump)?.sid).toBe(pump);
    // Its parent: the spawner (the same process for every member of this daemon), or the daemon.
    if (how === "perl") expect(cmdline(ppid(pid))[0]).toBe("lazarus spawner");
    else expect(ppid(pid)).toBe(daemon.pid);
    process.kill(-pid, "SIGKILL");
    await waitFor(
      () => out.split("\n").some((l) => l.includes('"msg":"member process exited"') && l.includes(`"pid":${pid}`)),
      20_000,
    );
    await waitFor(() => rec()?.status !== "running", 20_000);
    expect(rec()?.status).toBe("down");
  });
});

describe("the start path setting", () => {
  it("refuses an unknown LAZARUS_SPAWNER before anything starts, naming the setting and its values", async () => {
    const state = tempDir("lazarus-start-bad-");
    const config = configDir({
      "cells.d/x.yaml": cellYaml({ name: "x", members: [{ identity: "agent:x", command: ["sleep", "600"] }] }),
    });
    dirs.push(state, config);
    const r = await lazarus(["apply", "--yes", "--config", config, "--state-dir", state], {
      env: { LAZARUS_SPAWNER: "python" },
      timeoutMs: 60_000,
    });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain('LAZARUS_SPAWNER "python"');
    expect(() => readdirSync(path.join(state, "cells"))).toThrow();
  });
});
