// Running a session: spawn what the backend prepared and relay the operator's stdin, stdout and
// stderr to it over pipes (the member never gets the operator's terminal), forward the signals
// Lazarus receives, and pass its exit code back. An interactive shell puts the operator's
// terminal in raw mode for its duration: the member's own pty (see backends/session.ts) does the
// line discipline, so Ctrl-C and Ctrl-D reach the shell as keys.
import { spawn } from "node:child_process";
import { constants } from "node:os";
import type { SessionSpawn } from "../backends/backend.js";
import { type EngineOptions } from "../engine.js";
import { LazarusError, errorMessage } from "../util/errors.js";
import { closeSession, openSession, type SessionEnd, type SessionRequest } from "./session.js";

const FORWARDED: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"];

function relay(sp: SessionSpawn, o: { raw: boolean; stdin: boolean }): Promise<SessionEnd> {
  return new Promise((resolve, reject) => {
    const piped = sp.stdio === "pipe";
    // Piped: a session of its own (setsid), so nothing in it has a controlling terminal to open
    // (/dev/tty), and Lazarus forwards signals to its group. Inherited (the container engine on
    // a tty): in Lazarus's foreground group, where the terminal's resizes reach it.
    const child = spawn(sp.file, sp.args, {
      cwd: sp.cwd,
      env: sp.env,
      detached: piped,
      stdio: piped ? [o.stdin ? "pipe" : "ignore", "pipe", "pipe"] : "inherit",
    });
    const forward = (sig: NodeJS.Signals): void => {
      try {
        if (child.pid) process.kill(piped ? -child.pid : child.pid, sig);
      } catch {
        // gone
      }
    };
    for (const s of FORWARDED) process.on(s, forward);
    const raw = o.raw && piped && process.stdin.isTTY === true;
    if (raw) process.stdin.setRawMode(true);
    let reading = false;
    if (piped) {
      child.stdout?.pipe(process.stdout);
      child.stderr?.pipe(process.stderr);
      // our reader went away (| head): so does the command's pipe, which then ends it as it would
      // end without Lazarus in between (SIGPIPE or EPIPE)
      const gone = (from: NodeJS.ReadableStream | null) => (): void => {
        (from as { destroy?: () => void } | null)?.destroy?.();
      };
      process.stdout.once("error", gone(child.stdout));
      process.stderr.once("error", gone(child.stderr));
      if (child.stdin) {
        child.stdin.on("error", () => {}); // the command stopped reading: its stdin is simply gone
        process.stdin.pipe(child.stdin);
        reading = true;
      }
    }
    const done = (): void => {
      for (const s of FORWARDED) process.off(s, forward);
      if (raw) process.stdin.setRawMode(false);
      if (reading) {
        process.stdin.unpipe();
        process.stdin.destroy();
      }
    };
    child.once("error", (err) => {
      done();
      reject(err);
    });
    child.once("close", (exitCode, signal) => {
      done();
      resolve({ exitCode, signal });
    });
  });
}

// The exit code of `lazarus shell|exec` itself when Lazarus refuses or fails (not the command's):
// podman's and docker's exec convention, so a script can tell it from any code of the command.
export const EXIT_REFUSED = 125;

// Open (check, record), run, record the end; the command's exit code (128+n for signal n).
export async function runSession(
  opts: EngineOptions,
  req: SessionRequest,
  warn: (line: string) => void,
): Promise<number> {
  const s = await openSession(opts, req);
  let end: SessionEnd;
  try {
    end = await relay(s.spawn, { raw: Boolean(req.tty), stdin: req.kind === "shell" || !req.noStdin });
  } catch (err) {
    end = { exitCode: null, signal: null, error: errorMessage(err) };
  }
  try {
    await closeSession(opts, req, s, end);
  } catch (err) {
    warn(`warning: the end of this ${req.kind} was not recorded in the ledger: ${errorMessage(err)}`);
  }
  if (end.error)
    throw new LazarusError("SESSION_FAILED", `cannot start the ${req.kind} in cell ${req.cell}: ${end.error}`);
  if (end.signal) return 128 + (constants.signals[end.signal] ?? 0);
  return end.exitCode ?? 1;
}
