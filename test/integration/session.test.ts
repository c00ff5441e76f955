// lazarus exec and lazarus shell on backend process, through the CLI: the member's home and
// environment, stdin, stdout and exit codes passed through, refusals (exit 125) recorded, and the
// start and end of every session in the ledger, without holding the state-dir lock meanwhile.
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, cellYaml, cleanup, configDir, lazarus, procState, tempDir, waitFor } from "../helpers.js";
import { inPty } from "../pty.js";
import { acquireLock } from "../../src/lock/lock.js";

const state = tempDir("lazarus-session-state-");
const cfg = configDir({
  "cells.d/pc.yaml": cellYaml({
    name: "pc",
    members: [
      { identity: "agent:worker", command: ["sleep", "1000"] },
      { identity: "human:alice", role: "executor", env: { EDITOR: "vi" } },
      { identity: "human:late", role: "executor" },
      { identity: "human:rev", role: "observer" },
    ],
  }),
  "cells.d/gone.yaml": cellYaml({ name: "gone", members: [{ identity: "human:bob", role: "executor" }] }),
});
// -c and -s go before "--": what follows is the command's
const run = (args: string[], input?: string) => {
  const at = args.includes("--") ? args.indexOf("--") : args.length;
  return lazarus([...args.slice(0, at), "-c", cfg, "-s", state, ...args.slice(at)], {
    ...(input !== undefined ? { input } : {}),
    timeoutMs: 60_000,
  });
};
const token = (cell: string, home: string): string =>
  readFileSync(path.join(state, "cells", cell, ".lazarus", "invites", `${home}.token`), "utf8");

interface Event {
  seq: number;
  cell: string;
  action: string;
  reason: string;
  details?: Record<string, unknown>;
}
const events = async (): Promise<Event[]> =>
  (await lazarus(["events", "--json", "-s", state])).stdout
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Event);

beforeAll(async () => {
  const ap = await run(["apply", "--yes"]);
  expect(ap.exitCode, ap.stdout + ap.stderr).toBe(0);
  for (const [cell, who] of [
    ["pc", "alice"],
    ["pc", "rev"],
    ["gone", "bob"],
  ] as const) {
    const acc = await run(["accept", cell, `human:${who}`, "--token", "-"], token(cell, who));
    expect(acc.exitCode, acc.stderr).toBe(0);
  }
}, 120_000);
afterAll(async () => {
  for (const f of ["pc", "gone"]) writeFileSync(path.join(cfg, "cells.d", `${f}.yaml`), "");
  await run(["apply", "--yes"]);
  cleanup(state, cfg);
});

describe("lazarus exec (backend process)", () => {
  it("runs in the member's home with its environment, passes stdin and stdout through and returns the exit code", async () => {
    const r = await run(
      [
        "exec",
        "pc",
        "--as",
        "human:alice",
        "--",
        "sh",
        "-c",
        'pwd; echo "$HOME|$CELL_MEMBER|$CELL_ROLE|$EDITOR|${LAZARUS_SPAWN_ID:-none}"; cat; exit 7',
      ],
      "from stdin\n",
    );
    expect(r.exitCode, r.stderr).toBe(7);
    const home = path.join(state, "cells", "pc", "home", "alice");
    expect(r.stdout).toBe(`${home}\n${home}|human:alice|executor|vi|none\nfrom stdin`); // execa drops the last newline
    const stderr = await run(["exec", "pc", "--as", "human:alice", "--", "sh", "-c", "echo oops >&2"]);
    expect(stderr).toMatchObject({ exitCode: 0, stdout: "", stderr: "oops" });
    const noStdin = await run(["exec", "pc", "--as", "human:alice", "-n", "--", "cat"], "not passed\n");
    expect(noStdin).toMatchObject({ exitCode: 0, stdout: "" });
  });

  it("reports a command killed by a signal as 128+n, and one that cannot start as its own failure", async () => {
    expect((await run(["exec", "pc", "--as", "human:alice", "--", "sh", "-c", "kill -KILL $$"])).exitCode).toBe(137);
    const missing = await run(["exec", "pc", "--as", "human:alice", "--", "/nonexistent/tool"]);
    expect(missing.exitCode).toBe(125);
    expect(missing.stderr).toMatch(/cannot start the exec in cell pc: .*ENOENT/);
  });

  it("refuses, with exit 125 and a reason, a non-member, an unaccepted invitation, a read-only role it cannot enforce, an unknown cell and a closed one", async () => {
    const cases: [string[], RegExp][] = [
      [
        ["pc", "--as", "human:mallory"],
        /human:mallory is not a member of cell pc \(members: agent:worker, human:alice, human:late, human:rev\)/,
      ],
      [
        ["pc", "--as", "human:late"],
        /human:late has not accepted its invitation to cell pc yet; run lazarus accept pc human:late/,
      ],
      [
        ["pc", "--as", "human:rev"],
        /human:rev is an observer of cell pc and sees the cell read-only, which backend process cannot enforce/,
      ],
      [["nosuch", "--as", "human:alice"], /no live cell named nosuch/],
    ];
    for (const [args, why] of cases) {
      const r = await run(["exec", ...args, "--", "touch", "x"]);
      expect(r.exitCode, args.join(" ")).toBe(125);
      expect(r.stderr).toMatch(why);
      expect(r.stdout).toBe("");
    }
    writeFileSync(
      path.join(cfg, "cells.d", "gone.yaml"),
      cellYaml({ name: "gone", state: "closed", members: [{ identity: "human:bob", role: "executor" }] }),
    );
    expect((await run(["apply", "--yes"])).exitCode).toBe(0);
    const closed = await run(["exec", "gone", "--as", "human:bob", "--", "true"]);
    expect(closed.exitCode).toBe(125);
    expect(closed.stderr).toMatch(/cell gone is closed/);
    const noDashes = await run(["exec", "pc", "--as", "human:alice", "true"]);
    expect(noDashes.exitCode).toBe(125);
    expect(noDashes.stderr).toContain("put the command after --: lazarus exec pc --as human:alice -- true");
    const usage = await run(["exec", "pc", "--", "true"]);
    expect(usage.exitCode).toBe(125);
    expect(usage.stderr).toContain("required option '--as <identity>' not specified");
    const refused = (await events()).filter((e) => e.action === "exec-refused");
    expect(refused.map((e) => `${e.cell} ${e.details?.identity}`)).toEqual([
      "pc human:mallory",
      "pc human:late",
      "pc human:rev",
      "gone human:bob",
    ]);
    expect(refused[0]?.reason).toMatch(/^human:mallory \(host user \S+\): human:mallory is not a member/);
  });

  it("records the start and the end in the ledger and holds the state-dir lock only to append them", async () => {
    const exec = execa(
      "node",
      [CLI, "exec", "pc", "--as", "human:alice", "-c", cfg, "-s", state, "--", "sh", "-c", "cat; exit 3"],
      { reject: false, stdin: "pipe", env: { NO_COLOR: "1" } },
    );
    await waitFor(
      () =>
        readFileSync(path.join(state, "ledger.jsonl"), "utf8").includes(
          '"action":"exec","reason":"human:alice (host user',
        ) && readFileSync(path.join(state, "ledger.jsonl"), "utf8").includes("cat; exit 3"),
      30_000,
    );
    // the session runs: another command takes the lock at once (it is not held)
    const cp = await lazarus(["checkpoint", "pc", "--lock-timeout", "0s", "-s", state]);
    expect(cp.exitCode, cp.stderr).toBe(0);
    exec.stdin?.end("bye\n");
    const r = await exec;
    expect(r.exitCode).toBe(3);
    expect(r.stdout).toBe("bye");
    const all = await events();
    const first = all.find(
      (e) => e.action === "exec" && JSON.stringify(e.details?.command) === JSON.stringify(["sh", "-c", "cat; exit 3"]),
    );
    const mine = all.filter(
      (e) =>
        e.seq >= (first?.seq ?? 0) &&
        e.cell === "pc" &&
        (e.details?.session === first?.details?.session || e.action === "checkpoint"),
    );
    expect(mine.map((e) => e.action)).toEqual(["exec", "checkpoint", "exec-end"]);
    const [start, , end] = mine;
    expect(start?.details).toMatchObject({
      identity: "human:alice",
      role: "executor",
      backend: "process",
      command: ["sh", "-c", "cat; exit 3"],
      tty: false,
    });
    expect(start?.details?.hostUser).toBeTypeOf("string");
    expect(end?.details).toMatchObject({
      session: start?.details?.session,
      identity: "human:alice",
      exitCode: 3,
      signal: null,
    });
    expect(end?.reason).toMatch(/^human:alice \(host user \S+\): sh -c "cat; exit 3" ended, exit 3 after /);
    const text = await lazarus(["events", "pc", "-s", state]);
    expect(text.stdout).toMatch(/pc +exec +human:alice \(host user \S+\) ran sh -c "cat; exit 3" as executor/);
    expect(text.stdout).toMatch(/pc +exec-end +human:alice \(host user \S+\): sh -c "cat; exit 3" ended, exit 3 after/);
    expect((await lazarus(["ledger", "verify", "-s", state])).exitCode).toBe(0); // the hash chain holds
  });
});

describe("lazarus shell and exec: the command line", () => {
  it.each([["shell"], ["exec"]])("%s has --help with --as and --lock-timeout", async (cmd) => {
    const r = await lazarus([cmd, "--help"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`Usage: lazarus ${cmd}`);
    expect(r.stdout).toContain("--as <identity>");
    expect(r.stdout).toContain("--lock-timeout <duration>");
  });

  it("runs nothing when the start cannot be recorded (the state dir is held)", async () => {
    const lock = await acquireLock(path.join(state, "lazarus.lock"), "lazarus apply");
    try {
      const r = await run(["exec", "pc", "--as", "human:alice", "--lock-timeout", "0s", "--", "sh", "-c", "echo ran"]);
      expect(r.exitCode).toBe(125);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain(`another Lazarus holds the state dir: pid ${process.pid}`);
    } finally {
      await lock.release();
    }
  });
});

describe("lazarus shell (backend process)", () => {
  it("runs the shell on a pseudo-terminal of its own when stdin is a terminal, and passes its exit code", async () => {
    // python3's pty module is the operator's terminal; the typed lines are read by the member's shell
    const out = await inPty(
      ["node", CLI, "shell", "pc", "--as", "human:alice", "--shell", "/bin/sh", "-c", cfg, "-s", state],
      'echo "tty=$(tty) shell=$SHELL id=$CELL_MEMBER"; exit 4\n',
    );
    expect(out.stderr).toBe("");
    expect(out.status, out.output).toBe(4);
    expect(out.output).toMatch(/tty=\/dev\/pts\/\d+ shell=\/bin\/sh id=human:alice/);
    const ev = (await events()).filter((e) => e.action.startsWith("shell"));
    expect(ev.map((e) => e.action)).toEqual(["shell", "shell-end"]);
    expect(ev[0]?.details).toMatchObject({ identity: "human:alice", shell: "/bin/sh", tty: true });
    expect(ev[1]?.details).toMatchObject({ exitCode: 4 });
  });

  it("without a terminal, says so and runs the shell on stdin", async () => {
    const r = await run(["shell", "pc", "--as", "human:alice", "--shell", "/bin/sh"], "echo $CELL_ROLE; exit 2\n");
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe("executor");
    expect(r.stderr).toContain("stdin is not a terminal");
  });
});

describe("lazarus exec --now (last: the ledger is ahead of the clock afterwards)", () => {
  it("records the session at --now, and without it refuses a ledger that is ahead of the clock", async () => {
    const r = await run(["exec", "pc", "--as", "human:alice", "--now", "2031-01-01T00:00:00Z", "--", "true"]);
    expect(r.exitCode, r.stderr).toBe(0);
    const mine = (await events()).slice(-2);
    expect(mine.map((e) => [e.action, (e as unknown as { time: string }).time.slice(0, 16)])).toEqual([
      ["exec", "2031-01-01T00:00"],
      ["exec-end", "2031-01-01T00:00"],
    ]);
    const later = await run(["exec", "pc", "--as", "human:alice", "--", "true"]);
    expect(later.exitCode).toBe(125);
    expect(later.stderr).toMatch(/the ledger's last recorded time 2031-01-01T00:00:\S+ is in the future.*pass --now/);
  });
});

describe("lazarus exec (backend process): close ends the sessions", () => {
  it("ends a running session and what it started when the cell closes, and records the end", async () => {
    const st = tempDir("lazarus-session-close-");
    const cf = configDir({
      "cells.d/shut.yaml": cellYaml({ name: "shut", members: [{ identity: "human:carol", role: "executor" }] }),
    });
    const r = (args: string[], input?: string) =>
      lazarus([...args, "-c", cf, "-s", st], { ...(input !== undefined ? { input } : {}), timeoutMs: 60_000 });
    try {
      expect((await r(["apply", "--yes"])).exitCode).toBe(0);
      const tok = readFileSync(path.join(st, "cells", "shut", ".lazarus", "invites", "carol.token"), "utf8");
      expect((await r(["accept", "shut", "human:carol", "--token", "-"], tok)).exitCode).toBe(0);
      // the session starts a child of its own and waits on it
      let out = "";
      const exec = execa(
        "node",
        [
          CLI,
          "exec",
          "shut",
          "--as",
          "human:carol",
          "-c",
          cf,
          "-s",
          st,
          "--",
          "sh",
          "-c",
          "sleep 1000 & echo $!; wait",
        ],
        { reject: false, env: { NO_COLOR: "1" } },
      );
      exec.stdout?.on("data", (d: Buffer) => (out += d.toString()));
      await waitFor(() => /^\d+\n/.test(out), 30_000);
      const child = Number(out.trim());
      expect(procState(child)).toMatch(/^[RS]$/);
      writeFileSync(
        path.join(cf, "cells.d", "shut.yaml"),
        cellYaml({ name: "shut", state: "closed", members: [{ identity: "human:carol", role: "executor" }] }),
      );
      const closed = await r(["apply", "--yes"]);
      expect(closed.exitCode, closed.stdout + closed.stderr).toBe(0);
      const end = await exec;
      expect(end.exitCode).toBe(128 + 15); // the session's shell got SIGTERM
      await waitFor(() => ["Z", undefined].includes(procState(child)), 10_000); // and its child is gone
      const ends = (await lazarus(["events", "--json", "-s", st])).stdout
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Event);
      expect(ends.find((e) => e.action === "exec-end")?.details).toMatchObject({
        identity: "human:carol",
        signal: "SIGTERM",
      });
      expect(existsSync(path.join(st, "sessions"))).toBe(true);
      expect(readdirSync(path.join(st, "sessions"))).toEqual([]); // the note goes once none is left
    } finally {
      cleanup(st, cf);
    }
  });
});
