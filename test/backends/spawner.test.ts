// The Perl spawner every member starts through (src/backends/spawner.pl), driven through its own
// protocol as spawner.ts drives it: a member with a pump (each a session leader, the pump with an
// empty environment, holding only its own pipe end; the member's output stamped in its log), a
// member writing straight to its log, each exit reported with its status, and the refusals: a
// planted link, a FIFO or a directory where the log goes, a missing command, a missing working
// directory. The file itself passes `perl -c`.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOM, SPAWNER_PL } from "../../src/backends/spawner.js";
import { procInfo } from "../../src/host/proc.js";
import { which } from "../../src/util/which.js";
import { ROOT, tempDir, waitFor } from "../helpers.js";

const perl = which("perl", process.env.PATH);
const dirs: string[] = [];
const groups: number[] = [];
let spawner: ChildProcess;
let replies = "";

afterAll(() => {
  spawner?.stdin?.end();
  for (const g of groups) {
    try {
      process.kill(-g, "SIGKILL"); // a group this test started
    } catch {
      // gone
    }
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// One request; its reply line, "ID PID" or "ID KIND ...".
let nextId = 1;
async function ask(req: {
  pump: boolean;
  log: string;
  cwd: string;
  file: string;
  args: string[];
  env: Record<string, string>;
}): Promise<string[]> {
  const id = nextId++;
  const fields = [
    String(id),
    req.pump ? "1" : "0",
    req.log,
    "65536",
    "2",
    req.cwd,
    req.file,
    String(req.args.length),
    ...req.args,
    String(Object.keys(req.env).length),
    ...Object.entries(req.env).map(([k, v]) => `${k}=${v}`),
  ];
  const body = Buffer.from(fields.join("\0"));
  spawner.stdin?.write(`${body.length}\n`);
  spawner.stdin?.write(body);
  let line: string | undefined;
  await waitFor(() => {
    line = replies.split("\n").find((l) => l.startsWith(`${id} `));
    return line !== undefined;
  }, 20_000);
  return (line as string).split(" ").slice(1);
}

const sid = (pid: number): number => Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ")[3]);
const fdTargets = (pid: number): string[] =>
  readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return "";
    }
  });

describe.skipIf(!perl)("the Perl spawner", () => {
  it("is a Perl file that compiles (perl -c), shipped beside the built module", () => {
    const check = spawnSync(perl as string, ["-c", SPAWNER_PL], { encoding: "utf8" });
    expect(check.stderr).toContain("syntax OK");
    expect(check.status).toBe(0);
    expect(existsSync(path.join(ROOT, "dist", "backends", "spawner.pl"))).toBe(true);
  });

  const dir = tempDir("lazarus-spawner-");
  dirs.push(dir);
  beforeAll(() => {
    spawner = spawn(perl as string, [SPAWNER_PL, ROOM], { stdio: ["pipe", "pipe", "inherit"], env: {} });
    spawner.stdout?.setEncoding("utf8");
    spawner.stdout?.on("data", (d: string) => (replies += d));
  });

  it("starts a member and its pump, each a session leader; the pump has an empty environment and reads the member's pipe into the log, stamped", async () => {
    const log = path.join(dir, "a.log");
    const [pidText, extra] = await ask({
      pump: true,
      log,
      cwd: dir,
      file: "/bin/sh",
      args: ["-c", 'echo "hello $WHO from $(pwd)"; echo oops >&2; exec sleep 600'],
      env: { WHO: "member", PATH: process.env.PATH ?? "/usr/bin:/bin" },
    });
    expect(extra).toBeUndefined();
    const pid = Number(pidText);
    groups.push(pid);
    expect(sid(pid)).toBe(pid);
    expect(procInfo(pid)?.pgid).toBe(pid);
    await waitFor(() => readFileSync(log, "utf8").includes("oops"), 20_000);
    const lines = readFileSync(log, "utf8").trimEnd().split("\n");
    expect(lines.map((l) => l.replace(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z /, ""))).toEqual([
      `hello member from ${dir}`,
      "oops",
    ]);
    // The pump: a fork of the spawner named after the log, whose stdout is the log.
    const pump = readdirSync("/proc")
      .filter((e) => /^\d+$/.test(e))
      .map(Number)
      .find((p) => {
        try {
          return (
            readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0")[0] === `lazarus log-pump ${log}` &&
            readlinkSync(`/proc/${p}/fd/1`) === log
          );
        } catch {
          return false;
        }
      });
    expect(pump).toBeGreaterThan(0);
    groups.push(pump as number);
    expect(sid(pump as number)).toBe(pump);
    expect(readFileSync(`/proc/${pump}/environ`, "utf8")).toBe("");
    // The member's output goes to the pipe, not to the log; the pump holds no write end of it.
    const memberFds = fdTargets(pid);
    expect(memberFds).not.toContain(log);
    const pipe = readlinkSync(`/proc/${pid}/fd/1`);
    expect(pipe).toMatch(/^pipe:/);
    expect(readlinkSync(`/proc/${pump}/fd/0`)).toBe(pipe);
    expect(readlinkSync(`/proc/${pump}/fd/1`)).toBe(log);
    // It runs in a fork of the spawner, without an exec: it keeps no pipe or socket of the
    // spawner's (Lazarus's request and reply pipes would never close), only its own pipe; besides
    // its log, only the Perl modules that keep their file open (a module's __END__ section).
    const held = fdTargets(pump as number);
    expect(held.filter((t) => /^(pipe|socket|anon_inode):/.test(t))).toEqual([pipe]);
    expect(held.filter((t) => t !== pipe && t !== log && !t.endsWith(".pm"))).toEqual([]);
    expect(readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")).toContain("WHO=member");
    expect(readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(/SigIgn:\s+0+\n/); // default dispositions
    // The member's end of the pipe gone, the pump ends: it never outlives its last writer.
    process.kill(-pid, "SIGKILL");
    await waitFor(() => ["Z", undefined].includes(procInfo(pump as number)?.state), 20_000);
  });

  it("a pump that rotates its log keeps no rotated file open (the forked pump closes what it inherited as Perl closes it)", async () => {
    const log = path.join(dir, "r.log");
    // ~330 KB of lines against a 64 KiB limit with 2 kept: five or so rotations, the oldest files deleted.
    const script =
      'i=0; while [ $i -lt 3000 ]; do echo "line $i ................................................................................................"; i=$((i+1)); done; exec sleep 600';
    const [pidText] = await ask({
      pump: true,
      log,
      cwd: dir,
      file: "/bin/sh",
      args: ["-c", script],
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    });
    const pid = Number(pidText);
    groups.push(pid);
    await waitFor(() => readFileSync(log, "utf8").includes("line 2999 "), 20_000);
    expect(existsSync(`${log}.2`)).toBe(true);
    const pump = readdirSync("/proc")
      .filter((e) => /^\d+$/.test(e))
      .map(Number)
      .find((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0")[0] === `lazarus log-pump ${log}`;
        } catch {
          return false;
        }
      });
    expect(pump).toBeGreaterThan(0);
    groups.push(pump as number);
    // fd 1 is the current log; no other descriptor but stderr (the log it was started with) may
    // point at a rotated-away file.
    expect(readlinkSync(`/proc/${pump}/fd/1`)).toBe(log);
    const stale = readdirSync(`/proc/${pump}/fd`)
      .filter((fd) => fd !== "2")
      .map((fd) => readlinkSync(`/proc/${pump}/fd/${fd}`))
      .filter((t) => t.startsWith(log) && t !== log);
    expect(stale).toEqual([]);
  });

  it("reports each member's exit with its wait status as soon as it ends, the members' own signal dispositions the defaults", async () => {
    const [codePid] = await ask({
      pump: true,
      log: path.join(dir, "e.log"),
      cwd: dir,
      file: "/bin/sh",
      args: ["-c", "sleep 0.3; exit 3"],
      env: {},
    });
    const [sigPid] = await ask({
      pump: false,
      log: path.join(dir, "s.log"),
      cwd: dir,
      file: "/bin/sh",
      args: ["-c", "exec sleep 600"],
      env: {},
    });
    groups.push(Number(codePid), Number(sigPid));
    expect(readFileSync(`/proc/${sigPid}/status`, "utf8")).toMatch(/SigBlk:\s+0+\n/);
    process.kill(Number(sigPid), "SIGTERM");
    const exit = (pid: string): string | undefined => replies.split("\n").find((l) => l.startsWith(`E ${pid} `));
    await waitFor(() => exit(codePid as string) !== undefined && exit(sigPid as string) !== undefined, 20_000);
    expect(exit(codePid as string)).toBe(`E ${codePid} ${3 << 8}`);
    expect(exit(sigPid as string)).toBe(`E ${sigPid} 15`);
    // Reaped: no zombie is left behind by the spawner.
    expect(procInfo(Number(codePid))).toBeUndefined();
  });

  it("without a pump the member writes straight to its log", async () => {
    const log = path.join(dir, "b.log");
    const [pidText] = await ask({
      pump: false,
      log,
      cwd: dir,
      file: "/bin/sh",
      args: ["-c", "echo straight; exec sleep 600"],
      env: {},
    });
    const pid = Number(pidText);
    groups.push(pid);
    await waitFor(() => readFileSync(log, "utf8") === "straight\n", 20_000);
    expect(readlinkSync(`/proc/${pid}/fd/1`)).toBe(log);
  });

  it("refuses a planted link, a FIFO and a directory where the log goes, and reports a missing command or working directory", async () => {
    const target = path.join(dir, "target");
    writeFileSync(target, "");
    symlinkSync(target, path.join(dir, "link.log"));
    expect(
      (
        await ask({
          pump: true,
          log: path.join(dir, "link.log"),
          cwd: dir,
          file: "/bin/sh",
          args: ["-c", "echo no"],
          env: {},
        })
      ).slice(0, 2),
    ).toEqual(["L", "ELOOP"]);
    expect(readFileSync(target, "utf8")).toBe("");
    const fifo = path.join(dir, "fifo.log");
    spawnSync("mkfifo", [fifo]);
    expect(
      (await ask({ pump: false, log: fifo, cwd: dir, file: "/bin/sh", args: ["-c", "echo no"], env: {} })).slice(0, 2),
    ).toEqual(["L", "ENXIO"]);
    mkdirSync(path.join(dir, "d.log"));
    expect(
      (
        await ask({
          pump: false,
          log: path.join(dir, "d.log"),
          cwd: dir,
          file: "/bin/sh",
          args: ["-c", "echo no"],
          env: {},
        })
      ).slice(0, 2),
    ).toEqual(["L", "EISDIR"]);
    expect(
      (
        await ask({
          pump: true,
          log: path.join(dir, "c.log"),
          cwd: dir,
          file: path.join(dir, "no-such-command"),
          args: [],
          env: {},
        })
      ).slice(0, 2),
    ).toEqual(["X", "ENOENT"]);
    expect(
      (
        await ask({
          pump: false,
          log: path.join(dir, "c.log"),
          cwd: path.join(dir, "no-such-dir"),
          file: "/bin/sh",
          args: ["-c", "true"],
          env: {},
        })
      ).slice(0, 2),
    ).toEqual(["X", "ENOENT"]);
  });
});
