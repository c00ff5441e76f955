// A private supervisord to measure Lazarus against, side by side in one run.
//
//   requireSupervisord("vs-…");                  // without supervisord/supervisorctl: says so, exits 2
//   const why = supervisordMissing();           // that reason as a string (undefined when installed)
//   const sup = await startSupervisord();       // own temp dir, config, unix socket; supervisord -n as our child
//   writePrograms(sup, 1000);                   // [program:p<i>] command=sleep 600, autostart,
//                                               // one file each in sup.programsDir
//   const ms = await timeUpdate(sup, 1000);     // `supervisorctl -c CONF update`, then until all 1000 are RUNNING
//   const noop = await timeNoopUpdate(sup);     // `supervisorctl -c CONF update` with nothing changed
//   await sup.stop();                           // SIGTERM to supervisord (it stops its programs), wait for it,
//                                               // then SIGKILL any program pid it left alive; removes the dir
//
// Programs get startsecs=0 (RUNNING as soon as they are spawned: what Lazarus reports when apply
// returns), so supervisord is not charged its default 1 s settle time. Everything else is
// supervisord's default (output through pipes into AUTO log files under the temp dir).
// Nothing is ever signalled by name or pattern: only supervisord's own pid and the pids it reports.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { CpuGroup } from "./cpu.js";
import { killGroup, onTeardown } from "./teardown.js";

export interface Supervisor {
  dir: string; // the temp dir holding everything below
  conf: string; // supervisord.conf (also what supervisorctl -c reads)
  socket: string; // the unix socket of its XML-RPC interface
  programsDir: string; // included: programs/*.conf
  pid: number; // supervisord's pid (our child, in its own process group)
  ctl(args: string[]): Promise<string>; // run supervisorctl -c conf ARGS; resolves with its stdout
  states(): Promise<Map<string, { state: string; pid: number }>>; // every program's state, by XML-RPC
  stop(): Promise<void>;
}

// Why the peer cannot run here (undefined when it can).
export function supervisordMissing(): string | undefined {
  const missing = ["supervisord", "supervisorctl"].filter(
    (tool) => !(process.env.PATH ?? "").split(":").some((d) => d && existsSync(path.join(d, tool))),
  );
  if (missing.length === 0) return undefined;
  return (
    `${missing.join(" and ")} ${missing.length > 1 ? "are" : "is"} not on PATH: this bench measures Lazarus against ` +
    "supervisord and cannot run without it. Install it with `apt-get install supervisor` (it brings " +
    "supervisord and supervisorctl), or put both on PATH, then run the bench again."
  );
}

// A bench against supervisord, before it starts anything: without supervisord it says what is
// missing and how to install it, on stderr, and exits 2 (nothing measured is not a success).
export function requireSupervisord(bench: string): void {
  const missing = supervisordMissing();
  if (!missing) return;
  console.error(`${bench}: ${missing}`);
  process.exit(2);
}

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      // supervisorctl exits non-zero when some program is not RUNNING; its output is still the answer
      if (err && typeof (err as { code?: unknown }).code !== "number") reject(err);
      else if (err && !stdout) reject(new Error(`${file} ${args.join(" ")}: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

// One XML-RPC call over the unix socket; resolves with the raw response body.
function rpc(socket: string, method: string): Promise<string> {
  const body = `<?xml version="1.0"?><methodCall><methodName>${method}</methodName><params></params></methodCall>`;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath: socket,
        path: "/RPC2",
        method: "POST",
        headers: { "Content-Type": "text/xml", "Content-Length": Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

// getAllProcessInfo's structs → name → { state, pid }.
function parseStates(xml: string): Map<string, { state: string; pid: number }> {
  const out = new Map<string, { state: string; pid: number }>();
  for (const struct of xml.split("<struct>").slice(1)) {
    const field = (name: string): string | undefined =>
      new RegExp(`<name>${name}</name>\\s*<value>\\s*(?:<(?:string|int|i4)>)?([^<]*)`).exec(struct)?.[1];
    const name = field("name");
    if (name) out.set(name, { state: field("statename") ?? "?", pid: Number(field("pid") ?? 0) });
  }
  return out;
}

// Dead or a zombie, judged by /proc/<pid>/stat (never by kill -0).
function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
  } catch {
    return true;
  }
}

// cpu: a cgroup (bench/lib/cpu.ts) that supervisord and every supervisorctl run are put in, so the
// peer's CPU can be set against Lazarus's.
export async function startSupervisord(cpu?: CpuGroup): Promise<Supervisor> {
  const why = supervisordMissing();
  if (why) throw new Error(why);
  const dir = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-supervisord-"));
  const programsDir = path.join(dir, "programs");
  const logs = path.join(dir, "logs");
  mkdirSync(programsDir);
  mkdirSync(logs);
  const socket = path.join(dir, "supervisor.sock");
  const conf = path.join(dir, "supervisord.conf");
  writeFileSync(
    conf,
    [
      "[unix_http_server]",
      `file=${socket}`,
      "[supervisord]",
      "nodaemon=true",
      `logfile=${path.join(dir, "supervisord.log")}`,
      `pidfile=${path.join(dir, "supervisord.pid")}`,
      `childlogdir=${logs}`,
      "minfds=16384",
      "minprocs=4096",
      "[rpcinterface:supervisor]",
      "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
      "[supervisorctl]",
      `serverurl=unix://${socket}`,
      "[include]",
      `files = ${programsDir}/*.conf`,
      "",
    ].join("\n"),
  );
  const child: ChildProcess = spawn("supervisord", ["-n", "-c", conf], {
    detached: true,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const pid = child.pid as number;
  cpu?.add(pid); // before it has read its config, let alone started a program
  let known = new Map<string, { state: string; pid: number }>();
  const states = async (): Promise<Map<string, { state: string; pid: number }>> => {
    const s = parseStates(await rpc(socket, "supervisor.getAllProcessInfo"));
    for (const [k, v] of s) if (v.pid) known.set(k, v);
    return s;
  };
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      await states().catch(() => undefined); // the last pids it reports, for the check below
      process.kill(pid, "SIGTERM");
      const t = setTimeout(() => {
        try {
          process.kill(-pid, "SIGKILL");
        } catch {
          // gone
        }
      }, 60_000);
      await exited;
      clearTimeout(t);
    }
    for (const { pid: p } of known.values()) {
      if (gone(p)) continue;
      try {
        process.kill(-p, "SIGKILL"); // supervisord puts each program in its own process group
      } catch {
        // gone
      }
    }
    for (let i = 0; i < 200 && [...known.values()].some((v) => !gone(v.pid)); i++) await sleep(25);
    known = new Map();
    rmSync(dir, { recursive: true, force: true });
    undo();
  };
  // Interrupted (bench/lib/teardown.ts): stop() when there is time; on exit SIGTERM to supervisord,
  // which stops its programs itself, and SIGKILL to the program groups it last reported.
  const undo = onTeardown(() => {
    if (child.exitCode === null && child.signalCode === null) killGroup(pid, "SIGTERM");
    for (const { pid: p } of known.values()) if (!gone(p)) killGroup(p);
  }, stop);
  // Ready once its socket answers.
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`supervisord exited at start: ${stderr}`);
    try {
      await rpc(socket, "supervisor.getState");
      break;
    } catch {
      if (i > 400) {
        await stop();
        throw new Error(`supervisord did not answer on ${socket}: ${stderr}`);
      }
      await sleep(25);
    }
  }
  return {
    dir,
    conf,
    socket,
    programsDir,
    pid,
    ctl: (args) =>
      run(
        ...(cpu
          ? cpu.wrap("supervisorctl", ["-c", conf, ...args])
          : (["supervisorctl", ["-c", conf, ...args]] as [string, string[]])),
      ),
    states,
    stop,
  };
}

// N program sections, one file each (programs/p<i>.conf): `command`, autostart, startsecs=0.
export function writePrograms(sup: Supervisor, n: number, command = "sleep 600"): string[] {
  const names: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = `p${i}`;
    writeFileSync(
      path.join(sup.programsDir, `${name}.conf`),
      `[program:${name}]\ncommand=${command}\nautostart=true\nstartsecs=0\n`,
    );
    names.push(name);
  }
  return names;
}

// Wall time (ms) of `supervisorctl update` plus the wait until `expected` programs are RUNNING.
export async function timeUpdate(sup: Supervisor, expected: number, pollMs = 50): Promise<number> {
  const t = process.hrtime.bigint();
  await sup.ctl(["update"]);
  for (;;) {
    const s = await sup.states();
    if ([...s.values()].filter((v) => v.state === "RUNNING").length >= expected) break;
    const fatal = [...s.values()].find((v) => v.state === "FATAL" || v.state === "BACKOFF");
    if (fatal) throw new Error(`a supervisord program is ${fatal.state}: see ${sup.dir}`);
    await sleep(pollMs);
  }
  return Number(process.hrtime.bigint() - t) / 1e6;
}

// Wall time (ms) of `supervisorctl update` when nothing changed.
export async function timeNoopUpdate(sup: Supervisor): Promise<number> {
  const t = process.hrtime.bigint();
  await sup.ctl(["update"]);
  return Number(process.hrtime.bigint() - t) / 1e6;
}
