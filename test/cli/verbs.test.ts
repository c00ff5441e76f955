// The operator verbs (summon, team, invite, close, destroy) through the real CLI, on real files,
// a real git repository and real member processes.
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterEach, describe, expect, it } from "vitest";
import { AGENT, cleanup, configDir, isAlive, lazarus, readRecord, tempDir } from "../helpers.js";

const dirs: string[] = [];
afterEach(() => {
  cleanup(...dirs.splice(0));
});

// Two cells in one file, with comments, aligned trailing comments and a flow-style second cell.
const FIRST = `# yaml-language-server: $schema=../schemas/cell.schema.json
# The fleet's cells.
apiVersion: lazarus/v1
kind: Cell
metadata:
  name: alpha-1
  labels: {team: fleet}         # who pays
spec:
  project: Org/alpha#1
  owner: human:alexander
  state: active                 # set to closed to close the cell
  ttl: 4h
  # who works here
  members:
    # the main agent
    - identity: agent:allegro
      role: executor
      command: ["node", "${AGENT}"]   # the test agent
    - identity: human:alexander
      role: director
`;
const SECOND = `---
# The second cell, written compactly.
apiVersion: lazarus/v1
kind: Cell
metadata: {name: beta-2}
spec: {project: "Org/beta#2", owner: "human:alexander", members: [{identity: agent:ezra, role: executor, command: ["node", "${AGENT}"]}]}
`;
const FILE = "cells.d/fleet.yaml";

function setup(files: Record<string, string> = { [FILE]: FIRST + SECOND }): {
  config: string;
  state: string;
  read: (rel?: string) => string;
} {
  const config = configDir(files);
  const state = tempDir("lazarus-verbs-state-");
  dirs.push(config, state);
  return { config, state, read: (rel = FILE) => readFileSync(path.join(config, rel), "utf8") };
}

// The options go right after the verb: whatever follows "--" is a member's command.
const run = (config: string, state: string, args: string[], input?: string) =>
  lazarus(
    [args[0] as string, "--config", config, "--state-dir", state, ...args.slice(1)],
    input !== undefined ? { input } : {},
  );

// Nothing but the named files in cells.d/ (no temp file left behind).
const cellFiles = (config: string) => readdirSync(path.join(config, "cells.d")).sort();

describe("editing a cell keeps the rest of the file", () => {
  it("close changes one value of the right document and nothing else, byte for byte", async () => {
    const { config, state, read } = setup();
    const r = await run(config, state, ["close", "beta-2"]);
    expect(r.stderr).toBe(`wrote ${FILE}\nrun lazarus apply (or pass --apply) to make it so`);
    expect(r.exitCode).toBe(0);
    expect(read()).toBe(
      FIRST + SECOND.replace('owner: "human:alexander", members', 'owner: "human:alexander", state: closed, members'),
    );
    // The diff is printed, unified, with git's file names.
    expect(r.stdout).toContain(`--- a/${FILE}\n+++ b/${FILE}\n@@ `);
    expect(r.stdout).toContain('\n-spec: {project: "Org/beta#2"');
    expect(r.stdout).toContain('\n+spec: {project: "Org/beta#2", owner: "human:alexander", state: closed, members');

    const r2 = await run(config, state, ["close", "alpha-1"]);
    expect(r2.exitCode).toBe(0);
    const expected = FIRST.replace("  state: active                 # set", "  state: closed                 # set");
    expect(read()).toBe(
      expected +
        SECOND.replace('owner: "human:alexander", members', 'owner: "human:alexander", state: closed, members'),
    );
    expect(r2.stdout).toContain(
      "-  state: active                 # set to closed to close the cell\n+  state: closed                 # set to closed to close the cell",
    );
    expect(cellFiles(config)).toEqual(["fleet.yaml"]);

    // Closing again changes nothing and says so.
    const r3 = await run(config, state, ["close", "alpha-1"]);
    expect(r3.exitCode).toBe(0);
    expect(r3.stdout).toBe("");
    expect(r3.stderr).toContain("cell alpha-1 already has state: closed; nothing to change");
  });

  it("team add and remove edit only the members of the right document", async () => {
    const { config, state, read } = setup();
    const add = await run(config, state, ["team", "alpha-1", "add", "ezra", "--role", "observer"]);
    expect(add.stderr).toContain(`wrote ${FILE}`);
    expect(add.exitCode).toBe(0);
    const added = FIRST.replace(
      "      role: director\n",
      "      role: director\n    - identity: agent:ezra\n      role: observer\n",
    );
    expect(read()).toBe(added + SECOND);
    expect(add.stdout).toContain("+    - identity: agent:ezra\n+      role: observer\n");

    const rm = await run(config, state, ["team", "alpha-1", "remove", "agent:allegro", "--json"]);
    expect(rm.exitCode).toBe(0);
    const json = JSON.parse(rm.stdout) as {
      verb: string;
      cell: string;
      file: string;
      changed: boolean;
      written: boolean;
      diff: string;
    };
    expect(json).toMatchObject({ verb: "team", cell: "alpha-1", file: FILE, changed: true, written: true });
    expect(json.diff).toContain("-    - identity: agent:allegro\n");
    const removed = added.replace(
      `    - identity: agent:allegro\n      role: executor\n      command: ["node", "${AGENT}"]   # the test agent\n`,
      "",
    );
    expect(read()).toBe(removed + SECOND);

    // The compact (flow) document: a member is added inside its brackets.
    const add2 = await run(config, state, ["team", "beta-2", "add", "bot:kimi", "--role", "observer"]);
    expect(add2.exitCode).toBe(0);
    expect(read()).toBe(
      removed + SECOND.replace(`"${AGENT}"]}]}`, `"${AGENT}"]}, {identity: bot:kimi, role: observer}]}`),
    );
  });

  it("removing a member that is not there is a clear error and writes nothing", async () => {
    const { config, state, read } = setup();
    const r = await run(config, state, ["team", "alpha-1", "remove", "agent:nobody"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe(
      "error: cell alpha-1 has no member agent:nobody (members: agent:allegro (executor), human:alexander (director)); nothing was written",
    );
    expect(read()).toBe(FIRST + SECOND);
    const dup = await run(config, state, ["invite", "alpha-1", "human:alexander"]);
    expect(dup.exitCode).toBe(1);
    expect(dup.stderr).toContain("human:alexander is already a member of cell alpha-1 as director");
    const none = await run(config, state, ["close", "gamma-3"]);
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toContain("no cell named gamma-3 is declared");
    expect(read()).toBe(FIRST + SECOND);
  });

  it("an edit the loader would refuse is refused at its line, and nothing is written", async () => {
    const { config, state, read } = setup();
    const r = await run(config, state, ["invite", "alpha-1", "bot:kimi", "--role", "guest"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(
      `${FILE}:22:13: error: spec.members[2].role: role guest requires spec.policy.allowGuests: true`,
    );
    expect(read()).toBe(FIRST + SECOND);
    expect(cellFiles(config)).toEqual(["fleet.yaml"]);
  });

  it("a file that fails to load is refused with its file:line, and nothing is written", async () => {
    const broken = FIRST.replace("  ttl: 4h\n", "  ttl: 4h\n  bogus: [\n");
    const { config, state, read } = setup({ [FILE]: broken, "cells.d/other.yaml": SECOND.slice(4) });
    for (const args of [
      ["close", "alpha-1"],
      ["destroy", "alpha-1", "--yes"],
      ["team", "alpha-1", "add", "x", "--role", "observer"],
    ]) {
      const r = await run(config, state, args);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(
        new RegExp(
          `^error: ${FILE}, which declares cell alpha-1, fails to load; fix ${FILE} first .*nothing was written:\\n  ${FILE}:\\d+:\\d+: error: `,
        ),
      );
      expect(read()).toBe(broken);
    }
    // A schema error (not YAML syntax) is refused the same way.
    writeFileSync(path.join(config, FILE), FIRST.replace("role: director", "role: dictator"));
    const r = await run(config, state, ["close", "alpha-1"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`${FILE}:20:13: error: spec.members[1].role: must be one of`);
    expect(read()).toBe(FIRST.replace("role: director", "role: dictator"));
    expect(cellFiles(config)).toEqual(["fleet.yaml", "other.yaml"]);
    // The other, good file is still editable.
    expect((await run(config, state, ["close", "beta-2"])).exitCode).toBe(0);
  });

  it("--dry-run prints the diff and writes nothing", async () => {
    const { config, state, read } = setup();
    const r = await run(config, state, ["destroy", "alpha-1", "--dry-run"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("-  state: active");
    expect(r.stdout).toContain("+  state: closed");
    expect(r.stdout).toContain("+  grace: 0s\n");
    expect(r.stderr).toContain(`dry run: ${FILE} was not written`);
    expect(read()).toBe(FIRST + SECOND);
    const s = await run(config, state, ["summon", "Org/gamma#3", "--agent", "allegro", "--dry-run"]);
    expect(s.exitCode).toBe(0);
    expect(s.stdout).toContain("--- /dev/null\n+++ b/cells.d/gamma-3.yaml\n");
    expect(cellFiles(config)).toEqual(["fleet.yaml"]);
    expect(existsSync(path.join(state, "cells"))).toBe(false);
  });
});

describe("summon", () => {
  it("writes a new cell file named after the project, and refuses to overwrite a cell or a file", async () => {
    const { config, state } = setup();
    const r = await run(config, state, [
      "summon",
      "Timmy_Foundation/Timmy-Config#262",
      "--agent",
      "allegro",
      "--agent",
      "bot:kimi",
      "--ttl",
      "2h",
      "--owner",
      "alexander",
      "--json",
      "--",
      "node",
      "./agents/a.mjs",
    ]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      verb: "summon",
      cell: "timmy-config-262",
      file: "cells.d/timmy-config-262.yaml",
      created: true,
      written: true,
    });
    expect(readFileSync(path.join(config, "cells.d/timmy-config-262.yaml"), "utf8")).toBe(
      [
        "apiVersion: lazarus/v1",
        "kind: Cell",
        "metadata:",
        "  name: timmy-config-262",
        "spec:",
        "  project: Timmy_Foundation/Timmy-Config#262",
        "  owner: human:alexander",
        "  ttl: 2h",
        "  members:",
        "    - identity: agent:allegro",
        "      role: executor",
        '      command: ["node", "./agents/a.mjs"]',
        "    - identity: bot:kimi",
        "      role: executor",
        '      command: ["node", "./agents/a.mjs"]',
        "",
      ].join("\n"),
    );
    const again = await run(config, state, ["summon", "Other/timmy-config#262", "--agent", "ezra"]);
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toContain(
      "cell timmy-config-262 is already declared in cells.d/timmy-config-262.yaml; nothing was written",
    );
    // A name declared in another file is refused too, and so is a file of that name.
    const taken = await run(config, state, ["summon", "Org/x#1", "--name", "alpha-1", "--agent", "ezra"]);
    expect(taken.exitCode).toBe(1);
    expect(taken.stderr).toContain(`cell alpha-1 is already declared in ${FILE}`);
    writeFileSync(path.join(config, "cells.d/delta-4.yaml"), "# not yet written\n");
    const file = await run(config, state, ["summon", "Org/delta#4", "--agent", "ezra"]);
    expect(file.exitCode).toBe(1);
    expect(readFileSync(path.join(config, "cells.d/delta-4.yaml"), "utf8")).toBe("# not yet written\n");
  });

  it("--apply creates the cell and starts its member; close --apply closes it", async () => {
    const { config, state } = setup({});
    const r = await run(config, state, [
      "summon",
      "Org/repo#7",
      "--agent",
      "allegro",
      "--owner",
      "human:alexander",
      "--apply",
      "--",
      "node",
      AGENT,
    ]);
    expect(r.stderr).toContain("created cells.d/repo-7.yaml");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("Apply complete: 1 applied, 0 failed or skipped.");
    const rec = readRecord(path.join(state, "cells", "repo-7"));
    const m = rec.members[0];
    expect(m?.identity).toBe("agent:allegro");
    expect(isAlive(m?.pid, m?.startTime)).toBe(true);

    const c = await run(config, state, ["close", "repo-7", "--apply"]);
    expect(c.exitCode).toBe(0);
    expect(c.stdout).toMatch(/- close +repo-7/);
    expect(isAlive(m?.pid, m?.startTime)).toBe(false);
    expect(existsSync(path.join(state, "cells", "repo-7"))).toBe(false);
    expect(readRecord(path.join(state, "graveyard", "repo-7")).state).toBe("closed");

    // Its name is not free while it is in the graveyard, even once its file is gone.
    rmSync(path.join(config, "cells.d/repo-7.yaml"));
    const again = await run(config, state, ["summon", "Org/repo#7", "--agent", "ezra"]);
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toContain(
      `a cell named repo-7 is still in the graveyard (${path.join(state, "graveyard", "repo-7")}`,
    );
    expect(cellFiles(config)).toEqual([]);
  });
});

describe("destroy", () => {
  it("asks for confirmation on stdin and refuses without it", async () => {
    const { config, state, read } = setup();
    const no = await run(config, state, ["destroy", "alpha-1"], "no\n");
    expect(no.exitCode).toBe(1);
    expect(no.stderr).toContain("Only 'yes' will be accepted");
    expect(no.stderr).toContain("destroy cancelled; nothing was written");
    expect(read()).toBe(FIRST + SECOND);
    const eof = await run(config, state, ["destroy", "alpha-1"], "");
    expect(eof.exitCode).toBe(1);
    expect(eof.stderr).toContain("no answer on stdin; destroy cancelled, nothing was written (pass --yes");
    expect(read()).toBe(FIRST + SECOND);
    const yes = await run(config, state, ["destroy", "alpha-1"], "yes\n");
    expect(yes.exitCode).toBe(0);
    expect(read()).toBe(
      FIRST.replace("  state: active  ", "  state: closed  ").replace(
        "  # who works here\n",
        "  grace: 0s\n  # who works here\n",
      ) + SECOND,
    );
  });

  it("--apply closes the cell and scrubs it in the same apply: the plan shows both", async () => {
    const { config, state } = setup({ "cells.d/one.yaml": FIRST });
    expect((await run(config, state, ["apply"])).exitCode).toBe(0);
    const pid = readRecord(path.join(state, "cells", "alpha-1")).members[0]?.pid;
    expect(isAlive(pid, undefined)).toBe(true);
    const r = await run(config, state, ["destroy", "alpha-1", "--yes", "--apply"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/- close +alpha-1/);
    expect(r.stdout).toMatch(/✗ scrub +alpha-1 +grace 0s: deleted right after the close/);
    expect(isAlive(pid, undefined)).toBe(false);
    expect(existsSync(path.join(state, "cells", "alpha-1"))).toBe(false);
    expect(existsSync(path.join(state, "graveyard", "alpha-1"))).toBe(false);
    // The records are archived; the next plan has nothing to do.
    const day = readdirSync(path.join(state, "archive"));
    expect(readdirSync(path.join(state, "archive", day[0] as string))).toEqual(["alpha-1"]);
    const plan = await run(config, state, ["plan", "--json"]);
    expect((JSON.parse(plan.stdout) as { actions: unknown[] }).actions).toEqual([]);
  });
});

describe("destroy killed with -9 mid-apply", () => {
  it.each(["close:recorded", "applied:close", "scrub:before-archive-rename", "scrub:archived"])(
    "at %s converges on the next apply",
    async (point) => {
      const { config, state } = setup({ "cells.d/one.yaml": FIRST });
      expect((await run(config, state, ["apply"])).exitCode).toBe(0);
      const m = readRecord(path.join(state, "cells", "alpha-1")).members[0];
      const crashed = await lazarus(
        ["destroy", "--config", config, "--state-dir", state, "alpha-1", "--yes", "--apply"],
        { env: { LAZARUS_FAILPOINT: point } },
      );
      expect(crashed.signal, crashed.stdout + crashed.stderr).toBe("SIGKILL");
      const again = await run(config, state, ["apply"]);
      expect(again.exitCode, again.stdout + again.stderr).toBe(0);
      expect(isAlive(m?.pid, m?.startTime)).toBe(false);
      expect(existsSync(path.join(state, "cells", "alpha-1"))).toBe(false);
      expect(existsSync(path.join(state, "graveyard", "alpha-1"))).toBe(false);
      const day = readdirSync(path.join(state, "archive"))[0] as string;
      expect(readdirSync(path.join(state, "archive", day))).toEqual(["alpha-1"]);
      const plan = await run(config, state, ["plan", "--detailed-exitcode"]);
      expect(plan.exitCode, plan.stdout).toBe(0);
      const verify = await lazarus(["ledger", "verify", "--state-dir", state]);
      expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0);
    },
  );
});

describe("--commit", () => {
  async function gitRepo(dir: string): Promise<(...args: string[]) => Promise<string>> {
    const g = async (...args: string[]) => (await execa("git", args, { cwd: dir })).stdout;
    await g("init", "-q", "-b", "main");
    await g("config", "user.name", "Operator");
    await g("config", "user.email", "operator@example.org");
    await g("add", "-A");
    await g("commit", "-q", "-m", "cells");
    return g;
  }

  it("commits just that file, leaving other staged changes staged and out of the commit", async () => {
    const { config, state } = setup({ [FILE]: FIRST + SECOND, "cells.d/notes.txt": "a\n" });
    const g = await gitRepo(config);
    writeFileSync(path.join(config, "cells.d/notes.txt"), "a\nb\n");
    await g("add", "cells.d/notes.txt");
    const r = await run(config, state, ["close", "alpha-1", "--commit"]);
    expect(r.exitCode).toBe(0);
    expect(await g("rev-list", "--count", "HEAD")).toBe("2");
    expect(await g("show", "--name-only", "--format=%s", "HEAD")).toBe(
      `lazarus close alpha-1: state: closed\n\n${FILE}`,
    );
    expect(await g("diff", "--cached", "--name-only")).toBe("cells.d/notes.txt");
    expect(await g("status", "--porcelain", "--", FILE)).toBe("");

    // A summoned (new) file, with the operator's message.
    const s = await run(config, state, [
      "summon",
      "Org/gamma#3",
      "--agent",
      "ezra",
      "--owner",
      "human:x",
      "--commit",
      "-m",
      "Summon ezra for gamma#3",
      "--json",
    ]);
    expect(s.exitCode).toBe(0);
    const sha = (JSON.parse(s.stdout) as { commit: string }).commit;
    expect(await g("rev-parse", "HEAD")).toBe(sha);
    expect((await g("log", "-1", "--format=%B")).trim()).toBe(
      "Summon ezra for gamma#3\n\nlazarus summon gamma-3: Org/gamma#3 with agent:ezra as executor",
    );
    expect(await g("show", "--name-only", "--format=", "HEAD")).toBe("cells.d/gamma-3.yaml");
    expect(await g("diff", "--cached", "--name-only")).toBe("cells.d/notes.txt");
  });

  it("outside a git repository, --commit is refused before anything is written", async () => {
    const { config, state, read } = setup();
    const r = await run(config, state, ["close", "alpha-1", "--commit"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("is not inside a git repository");
    expect(read()).toBe(FIRST + SECOND);
  });
});

it("every verb has --help", async () => {
  for (const verb of ["summon", "team", "invite", "close", "destroy"]) {
    const r = await lazarus([verb, "--help"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`Usage: lazarus ${verb}`);
    expect(r.stdout).toContain("--dry-run");
  }
});
