// Members' recorded pids, reused: two members are killed, and each pid is taken on purpose
// (through /proc/sys/kernel/ns_last_pid) by a process that leads a session and a process group of
// that number. One is unrelated to the cell: apply neither adopts it nor signals it, at restart or
// close. The other carries the member's spawn id and cell in its environment, as a process the
// member left behind would (a descendant that forked until it got the pid, then setsid): only the
// kernel start time tells it from the member, and it is not adopted as the member either (as the
// member's own descendant it may be stopped with the member's group: proc.ts memberGroupPids).
// Real processes; liveness read from /proc/PID/stat.
import { spawnSync } from "node:child_process";
import { accessSync, constants, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cellYaml, configDir, lazarus, procState, readRecord, tempDir, waitFor } from "../helpers.js";
import { procInfo } from "../../src/host/proc.js";
import { which } from "../../src/util/which.js";

const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();
const NS_LAST_PID = "/proc/sys/kernel/ns_last_pid";

function skipWhy(): string | undefined {
  if (!which("perl", process.env.PATH)) return "it needs perl (to fork at a chosen pid)";
  try {
    accessSync(NS_LAST_PID, constants.W_OK);
  } catch {
    return `it needs to write ${NS_LAST_PID} (root in this pid namespace) to reuse a pid on purpose`;
  }
  return undefined;
}
const skipReason = skipWhy();
if (skipReason) console.warn(`SKIPPED: pid reuse: ${skipReason}`);

// Forks until a child gets pid `want`; that child makes its own session (so its pgid is `want`
// too) and runs the command. Prints the pid, or fails when another process took it first.
const AT_PID = `
use POSIX ();
my $want = shift @ARGV;
for (1 .. 2000) {
  open(my $f, '>', '${NS_LAST_PID}') or die "ns_last_pid: $!";
  print $f ($want - 1);
  close $f;
  my $c = fork();
  die "fork: $!" unless defined $c;
  if ($c == 0) {
    if ($$ == $want) {
      POSIX::setsid();
      open(STDIN, '<', '/dev/null'); open(STDOUT, '>', '/dev/null'); open(STDERR, '>', '/dev/null');
      exec @ARGV or POSIX::_exit(127);
    }
    POSIX::_exit(0);
  }
  if ($c == $want) { print "$c\\n"; exit 0; }
  waitpid($c, 0);
  exit 2 if -e "/proc/$want";
}
exit 1;
`;

describe.skipIf(skipReason)("members' pids reused by other processes", () => {
  const state = tempDir("lazarus-reuse-");
  const cfg = configDir({});
  const run = (now: string, ...args: string[]) => lazarus([...args, "--now", now, "-c", cfg, "-s", state]);
  const cellDir = path.join(state, "cells", "reuse");
  const started: number[] = []; // the processes this test started at a chosen pid
  const member = (id: string) => readRecord(cellDir).members.find((m) => m.identity === id);
  afterAll(() => {
    for (const pid of started) if (procState(pid) && procState(pid) !== "Z") process.kill(pid, "SIGKILL");
    for (const d of [state, cfg]) rmSync(d, { recursive: true, force: true });
  });

  // Kill the member's group, wait until its pid is free, and start `sleep` at that pid with env.
  const takePid = async (pid: number, env: Record<string, string>): Promise<void> => {
    process.kill(-pid, "SIGKILL");
    await waitFor(() => procState(pid) === undefined, 60_000); // dead and reaped: the pid is free
    const taken = spawnSync("perl", ["-e", AT_PID, String(pid), "sleep", "100000"], {
      encoding: "utf8",
      timeout: 60_000,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
    });
    expect(
      taken.status,
      `could not take pid ${pid} on purpose (exit 2: another process took it first): ${taken.stderr}`,
    ).toBe(0);
    started.push(pid);
    await waitFor(() => procInfo(pid)?.pgid === pid && procInfo(pid)?.sid === pid);
  };

  it("neither adopts nor signals an unrelated process at a member's pid, nor adopts the member's own leftover", async () => {
    const members = [
      { identity: "agent:a", command: ["sleep", "100000"], restart: "always" },
      { identity: "agent:b", command: ["sleep", "100000"], restart: "always" },
    ];
    writeFileSync(path.join(cfg, "cells.d", "reuse.yaml"), cellYaml({ name: "reuse", grace: "1m", members }));
    const created = await run(T(0), "apply", "--yes");
    expect(created.exitCode, created.stdout + created.stderr).toBe(0);
    const a = member("agent:a");
    const b = member("agent:b");
    const [pa, pb] = [a?.pid as number, b?.pid as number];
    await takePid(pa, {});
    await takePid(pb, { LAZARUS_SPAWN_ID: b?.spawnId as string, CELL_ID: "reuse" });
    expect(procInfo(pa)?.startTime).not.toBe(a?.startTime);
    expect(procInfo(pb)?.startTime).not.toBe(b?.startTime);

    const down = await run(T(1), "apply", "--yes");
    expect(down.exitCode, down.stdout + down.stderr).toBe(0);
    expect(down.stdout).toMatch(/member-down\s+reuse\s+agent:a: process \d+ is gone/);
    expect(down.stdout).toMatch(/member-down\s+reuse\s+agent:b: process \d+ is gone/);
    expect(procState(pa)).toBe("S");
    const restarted = await run(T(2), "apply", "--yes"); // past the restart backoff
    expect(restarted.exitCode, restarted.stdout + restarted.stderr).toBe(0);
    for (const [id, pid] of [
      ["agent:a", pa],
      ["agent:b", pb],
    ] as const) {
      expect(member(id)?.status).toBe("running");
      expect(member(id)?.pid).not.toBe(pid); // not adopted: a new process
      expect(procState(member(id)?.pid as number)).toBe("S");
    }
    expect(procState(pa)).toBe("S"); // the unrelated one was not signalled

    rmSync(path.join(cfg, "cells.d", "reuse.yaml"));
    const closed = await run(T(3), "apply", "--yes");
    expect(closed.exitCode, closed.stdout + closed.stderr).toBe(0);
    expect(procState(pa)).toBe("S");
  }, 180_000);
});
