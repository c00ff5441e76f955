// A pseudo-terminal for tests of interactive commands: python3's pty module plays the operator's
// terminal (a real one: the kernel's pty, not a fake), types the input, and collects the output.
import { execa } from "execa";

const DRIVER = `
import json, os, pty, sys
data = sys.stdin.buffer.read()
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
os.write(fd, data)
out = b""
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, st = os.waitpid(pid, 0)
print(json.dumps({"output": out.decode("utf-8", "replace"), "status": os.waitstatus_to_exitcode(st)}))
`;

// Run argv on a new pty with input typed ahead; its output (echo included) and exit status.
export async function inPty(
  argv: string[],
  input: string,
  env: Record<string, string> = {},
): Promise<{ output: string; status: number; stderr: string }> {
  const r = await execa("python3", ["-c", DRIVER, ...argv], {
    reject: false,
    input,
    timeout: 120_000,
    env: { NO_COLOR: "1", TERM: "xterm", ...env },
  });
  if (!r.stdout) throw new Error(`the pty driver failed: ${r.stderr}`);
  return { ...(JSON.parse(String(r.stdout)) as { output: string; status: number }), stderr: String(r.stderr) };
}
