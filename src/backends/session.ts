// What every backend shares to run a session (lazarus shell / exec): the pseudo-terminal of an
// interactive shell.
//
// Why `script` (util-linux): bubblewrap's --new-session (setsid) is there so that a member can
// never push input into the operator's terminal (TIOCSTI), and a member process must not hold the
// operator's terminal at all (its ioctls reach the operator's session: modes, size, injection on
// kernels that still allow it). So the operator's terminal stays with Lazarus, which puts it in
// raw mode and relays bytes over pipes; inside the member's view, `script` allocates a fresh
// pseudo-terminal (bubblewrap's --dev gives the sandbox its own devpts instance) and runs the
// shell on it as its controlling terminal, so job control, Ctrl-C and line editing work, and a
// TIOCSTI on it can only reach the member's own shell. `script` is util-linux, which the sandbox
// already needs (setpriv, unshare), and it is found under /usr inside the sandbox. Flatpak, which
// keeps the caller's terminal, blocks TIOCSTI with a seccomp filter instead; bubblewrap only takes
// a compiled BPF program, and the terminal's other ioctls (modes, size) would still reach the
// operator, so the terminal stays out. A Node pty
// library (node-pty) was not taken: it needs a native build, and its pty would still be opened
// on the host, outside the sandbox's devpts. The cost: a window resize is not passed on after
// the start (the size is set once; `stty rows R cols C` inside changes it).
import { which } from "../util/which.js";
import { LazarusError } from "../util/errors.js";
import type { SessionSpec } from "./backend.js";

// A word for sh -c, single-quoted.
export const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export function scriptPath(): string {
  const p = which("script", process.env.PATH ?? "/usr/bin:/bin", ["/usr/bin", "/bin"]);
  if (!p)
    throw new LazarusError(
      "NO_SCRIPT",
      "an interactive shell needs script(1) from util-linux (Debian: apt-get install bsdutils)",
    );
  return p;
}

// The command a session runs, and the SHELL it runs with. With a tty: script on a new pty, its
// -c line read by /bin/sh (script runs it with $SHELL), setting the size, then exec'ing the
// command with SHELL set to the chosen shell.
export function sessionCommand(
  spec: Pick<SessionSpec, "command" | "tty">,
  shell: string,
  script: string | undefined,
): { command: string[]; shellVar: string } {
  if (!spec.tty || !script) return { command: spec.command, shellVar: shell };
  const { rows, cols } = spec.tty;
  const line = `stty rows ${Math.trunc(rows)} cols ${Math.trunc(cols)} 2>/dev/null; SHELL=${shellQuote(shell)}; export SHELL; exec ${spec.command.map(shellQuote).join(" ")}`;
  return { command: [script, "--quiet", "--flush", "--return", "--command", line, "/dev/null"], shellVar: "/bin/sh" };
}
