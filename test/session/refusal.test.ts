// Who may have a session in a cell, and the command an interactive one runs (pure functions).
import { rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { tempDir } from "../helpers.js";
import type { CellRecord, MemberRecord } from "../../src/cells/record.js";
import { defaultShell, refusal } from "../../src/session/session.js";
import { sessionCommand, shellQuote } from "../../src/backends/session.js";

const member = (identity: string, role: MemberRecord["role"], status: MemberRecord["status"]): MemberRecord => ({
  identity,
  home: identity.split(":")[1] as string,
  role,
  env: {},
  status,
  restarts: 0,
  joinedAt: "2030-01-01T00:00:00Z",
});
const cell = (backend: CellRecord["backend"], state: CellRecord["state"] = "active"): CellRecord =>
  ({
    name: "c1",
    state,
    backend,
    members: [
      member("human:dir", "director", "joined"),
      member("human:obs", "observer", "joined"),
      member("human:new", "executor", "invited"),
      member("human:old", "executor", "revoked"),
      member("bot:g", "guest", "joined"),
      member("agent:a", "executor", "running"),
    ],
  }) as unknown as CellRecord;

describe("refusal", () => {
  it("lets a joined member of an active or downed cell in, an agent included", () => {
    for (const b of ["process", "sandbox", "container"] as const) {
      expect(refusal(cell(b), "human:dir", "shell")).toBeUndefined();
      expect(refusal(cell(b), "agent:a", "exec")).toBeUndefined();
    }
    expect(refusal(cell("sandbox", "downed"), "human:dir", "exec")).toBeUndefined();
  });

  it("refuses a cell that is not active, a stranger, an open or revoked invitation", () => {
    expect(refusal(cell("sandbox", "closed"), "human:dir", "shell")).toBe(
      "cell c1 is closed; a shell needs an active cell",
    );
    expect(refusal(cell("sandbox", "preparing"), "human:dir", "exec")).toMatch(/is preparing/);
    expect(refusal(cell("sandbox"), "human:eve", "exec")).toMatch(
      /^human:eve is not a member of cell c1 \(members: human:dir, human:obs/,
    );
    expect(refusal(cell("sandbox"), "human:new", "shell")).toMatch(
      /has not accepted its invitation .* lazarus accept c1 human:new --token -/,
    );
    expect(refusal(cell("sandbox"), "human:old", "shell")).toMatch(/was revoked/);
  });

  it("gives read-only roles a session only where the backend makes the cell read-only for them", () => {
    expect(refusal(cell("process"), "human:obs", "shell")).toMatch(
      /an observer of cell c1 and sees the cell read-only, which backend process cannot enforce/,
    );
    expect(refusal(cell("process"), "bot:g", "exec")).toMatch(/a guest of cell c1/);
    for (const b of ["sandbox", "container"] as const) {
      expect(refusal(cell(b), "human:obs", "shell")).toBeUndefined();
      expect(refusal(cell(b), "bot:g", "shell")).toBeUndefined();
    }
  });
});

describe("defaultShell", () => {
  it("is the operator's $SHELL where the member's view has it, else /bin/sh", () => {
    expect(defaultShell("process", { SHELL: "/bin/sh" })).toBe("/bin/sh");
    expect(defaultShell("process", {})).toBe("/bin/sh");
    expect(defaultShell("process", { SHELL: "/nonexistent/zsh" })).toBe("/bin/sh");
    expect(defaultShell("process", { SHELL: "/etc/passwd" })).toBe("/bin/sh"); // not a program
    expect(defaultShell("container", { SHELL: "/bin/bash" })).toBe("/bin/sh");
    expect(defaultShell("sandbox", { SHELL: "/bin/sh" })).toBe("/bin/sh");
    // a shell of the operator's own, outside the system dirs: the sandbox's view does not have it
    const mine = path.join(tempDir("lazarus-shell-"), "myshell");
    writeFileSync(mine, "#!/bin/sh\n", { mode: 0o755 });
    expect(defaultShell("process", { SHELL: mine })).toBe(mine);
    expect(defaultShell("sandbox", { SHELL: mine })).toBe("/bin/sh");
    rmSync(path.dirname(mine), { recursive: true, force: true });
  });
});

describe("sessionCommand", () => {
  it("runs a command as is without a terminal, and under script on a pty of the given size with one", () => {
    expect(sessionCommand({ command: ["ls", "-l"] }, "/bin/bash", "/usr/bin/script")).toEqual({
      command: ["ls", "-l"],
      shellVar: "/bin/bash",
    });
    const t = sessionCommand({ command: ["/bin/bash"], tty: { rows: 40, cols: 120 } }, "/bin/bash", "/usr/bin/script");
    expect(t.shellVar).toBe("/bin/sh");
    expect(t.command).toEqual([
      "/usr/bin/script",
      "--quiet",
      "--flush",
      "--return",
      "--command",
      "stty rows 40 cols 120 2>/dev/null; SHELL='/bin/bash'; export SHELL; exec '/bin/bash'",
      "/dev/null",
    ]);
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
  });
});
