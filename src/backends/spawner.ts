// The client of spawner.pl (the Perl spawner and log pump): one spawner per Lazarus process,
// started on the first member spawn, ended when Lazarus ends (its stdin closes). It is the parent
// of every member it starts and reports each exit ("E PID STATUS"), so apply and the daemon start
// members the same way and the daemon still learns of an exit at once. Requests are answered in
// order; a spawner that dies fails what it was asked, and the next spawn starts another (the
// members it started go on; their exits are then seen by the daemon's tick, which checks pids).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import type { Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { refusedWrite } from "../util/safe-fs.js";
import { which } from "../util/which.js";

// spawner.pl beside this module (the build copies it from src/ to dist/).
export const SPAWNER_PL = fileURLToPath(new URL("./spawner.pl", import.meta.url));

export interface SpawnerRequest {
  pump: boolean;
  logFile: string;
  maxBytes: number;
  keep: number;
  cwd: string;
  file: string;
  args: string[];
  env: Record<string, string>;
}

export interface Spawner {
  // Start a member; resolves with its pid once it has exec'd. onExit: called when it ends.
  spawn(req: SpawnerRequest, onExit?: (pid: number) => void): Promise<number>;
}

// The host's perl when it has every module spawner.pl loads, else undefined (looked up once).
let usablePerl: string | null | undefined;
export function spawnerPerl(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (usablePerl === undefined) {
    const perl = which("perl", env.PATH);
    const modules = ["-MPOSIX", "-MErrno", "-MFcntl", "-MTime::HiRes", "-e1"];
    usablePerl = perl && spawnSync(perl, modules, { stdio: "ignore", env: {} }).status === 0 ? perl : null;
  }
  return usablePerl ?? undefined;
}

let running: { child: ChildProcess; spawner: Spawner } | undefined;

// The spawner of this process, started with perl when first asked.
export function perlSpawner(perl: string): Spawner {
  return { spawn: (req, onExit) => (running ??= startSpawner(perl)).spawner.spawn(req, onExit) };
}

// Room in the spawner's arguments for its pumps' names ("lazarus log-pump LOG" in ps: spawner.pl).
export const ROOM = "-".repeat(4200);

interface Pending {
  req: SpawnerRequest;
  onExit?: (pid: number) => void;
  resolve(pid: number): void;
  reject(err: unknown): void;
}

function startSpawner(perl: string): { child: ChildProcess; spawner: Spawner } {
  // Detached: a signal to Lazarus's process group (Ctrl-C) does not end it in the middle of a
  // spawn; it ends when its stdin closes. Its environment is empty: members get theirs from
  // each request.
  const child = spawn(perl, [SPAWNER_PL, ROOM], { stdio: ["pipe", "pipe", "ignore"], env: {}, detached: true });
  const stdin = child.stdin as NonNullable<ChildProcess["stdin"]>;
  const stdout = child.stdout as NonNullable<ChildProcess["stdout"]>;
  const pending = new Map<number, Pending>();
  const watched = new Map<number, (pid: number) => void>();
  let next = 1;
  let buffered = "";
  // Idle, the spawner never keeps Lazarus alive (an apply returns while its members run on).
  const hold = (on: boolean): void => {
    for (const h of [child, stdout as unknown as Socket, stdin as unknown as Socket]) {
      if (on) h.ref?.();
      else h.unref?.();
    }
  };
  const fail = (err: unknown): void => {
    if (running?.child === child) running = undefined;
    watched.clear();
    for (const [id, p] of pending) {
      pending.delete(id);
      p.reject(err);
    }
  };
  const answer = (line: string): void => {
    const [head, kind, code, ...rest] = line.split(" ");
    if (head === "E") {
      const pid = Number(kind);
      const onExit = watched.get(pid);
      watched.delete(pid);
      onExit?.(pid);
      return;
    }
    const p = pending.get(Number(head));
    if (!p) return;
    pending.delete(Number(head));
    if (pending.size === 0) hold(false);
    if (kind !== undefined && /^\d+$/.test(kind) && code === undefined) {
      // Watched before the promise settles: the exit may be the very next line.
      if (p.onExit) watched.set(Number(kind), p.onExit);
      p.resolve(Number(kind));
    } else if (kind === "L") p.reject(refusedWrite(p.req.logFile, { code: code ?? "EIO" }));
    else if (kind === "K") p.reject(refusedWrite(p.req.logFile, { kind: [code, ...rest].join(" ") }));
    else {
      const why = `spawn ${p.req.file} ${code ?? "failed"}${rest.length ? ` (${rest.join(" ")})` : ""}`;
      p.reject(Object.assign(new Error(why), code ? { code } : {}));
    }
  };
  stdout.setEncoding("utf8");
  stdout.on("data", (chunk: string) => {
    buffered += chunk;
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      answer(line);
    }
  });
  child.once("error", fail);
  child.once("exit", (code, signal) => fail(new Error(`the spawner exited (${signal ?? `code ${code}`})`)));
  stdin.on("error", () => undefined); // an exit follows, and fails what is pending
  hold(false);
  const spawner: Spawner = {
    spawn(req, onExit) {
      const id = next++;
      const env = Object.entries(req.env).map(([k, v]) => `${k}=${v}`);
      const head = [String(id), req.pump ? "1" : "0", req.logFile, String(req.maxBytes), String(req.keep)];
      const fields = [...head, req.cwd, req.file, String(req.args.length), ...req.args, String(env.length), ...env];
      if (fields.some((f) => f.includes("\0")))
        return Promise.reject(new Error("an argument or environment value holds a NUL byte"));
      const body = Buffer.from(fields.join("\0"));
      return new Promise<number>((resolve, reject) => {
        if (pending.size === 0) hold(true);
        pending.set(id, { req, resolve, reject, ...(onExit ? { onExit } : {}) });
        stdin.write(`${body.length}\n`);
        stdin.write(body);
      });
    },
  };
  return { child, spawner };
}
