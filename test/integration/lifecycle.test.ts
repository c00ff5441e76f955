// The whole lifecycle through the real CLI, with real member processes, moving time with --now.
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AGENT,
  cellProcesses,
  cellYaml,
  cleanup,
  configDir,
  isAlive,
  lazarus,
  readRecord,
  tempDir,
  waitFor,
} from "../helpers.js";

const SECRET = "s3cr3t-token-value-4242";
const HOST_SECRET = "host-only-hermes-secret";
let config: string;
let state: string;
let outside: string;
let secrets: string; // the operator's secrets root
const T = (h: number, m = 0) => new Date(Date.parse("2030-01-01T00:00:00Z") + h * 3_600_000 + m * 60_000).toISOString();
const outputs: string[] = [];

async function run(...args: string[]) {
  const r = await lazarus([...args, "--config", config, "--state-dir", state], {
    env: {
      HERMES_API_KEY: HOST_SECRET,
      GITEA_TOKEN: "host-token",
      LAZARUS_SECRET_ALPHA: SECRET,
      LAZARUS_SECRETS_DIR: secrets,
    },
  });
  outputs.push(r.stdout, r.stderr);
  return r;
}

const live = (name: string) => path.join(state, "cells", name);
const member = (name: string, home: string) => readRecord(live(name)).members.find((m) => m.home === home)!;

const alphaYaml = (extra: { ttl?: string; members?: Parameters<typeof cellYaml>[0]["members"] } = {}) =>
  cellYaml({
    name: "alpha",
    ttl: extra.ttl ?? "4h",
    extra: `  credentials:\n    GITEA_TOKEN: {file: gitea/token}\n    ALPHA_TOKEN: {env: LAZARUS_SECRET_ALPHA}`,
    members: extra.members ?? [
      { identity: "agent:allegro", role: "executor", command: ["node", AGENT], env: { LOG_LEVEL: "info" } },
      { identity: "human:alexander", role: "director" },
    ],
  });

beforeAll(() => {
  state = tempDir("lazarus-state-");
  outside = tempDir("lazarus-outside-");
  writeFileSync(path.join(outside, "precious.txt"), "do not delete");
  secrets = tempDir("lazarus-secrets-");
  mkdirSync(path.join(secrets, "gitea"));
  writeFileSync(path.join(secrets, "gitea", "token"), `${SECRET}-file\n`);
  config = configDir({ "cells.d/alpha.yaml": alphaYaml(), "cells.d/beta.yaml": cellYaml({ name: "beta" }) });
});
afterAll(() => cleanup(state, config, outside, secrets));

describe("a cell's life through plan and apply", () => {
  it("plans the creation without touching anything", async () => {
    const r = await run("plan", "--detailed-exitcode", "--now", T(0));
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toContain("+ create        alpha");
    expect(r.stdout).toContain("Plan: 2 create.");
    expect(existsSync(path.join(state, "cells"))).toBe(false);
  });

  it("creates the cells with the spec's layout and starts their members", async () => {
    const r = await run("apply", "--now", T(0));
    expect(r.exitCode, r.stderr).toBe(0);
    const dir = live("alpha");
    for (const p of [
      ".lazarus/cell.json",
      ".lazarus/spawn.log",
      ".lazarus/decisions.jsonl",
      ".lazarus/checkpoints",
      "project",
      "shared/scratchpad.md",
      "shared/artifacts",
      "home/allegro",
      "home/alexander",
    ]) {
      expect(existsSync(path.join(dir, p)), p).toBe(true);
    }
    const rec = readRecord(dir);
    expect(rec.state).toBe("active");
    expect(rec.expiresAt).toBe(new Date(Date.parse(T(4))).toISOString());
    const m = member("alpha", "allegro");
    expect(isAlive(m.pid, m.startTime)).toBe(true);
    expect(member("alpha", "alexander").status).toBe("invited");
  });

  it("gives a member only its allowlisted environment, its home as cwd and its own process group", async () => {
    const envFile = path.join(live("alpha"), "home", "allegro", "env.json");
    await waitFor(() => existsSync(envFile));
    const seen = JSON.parse(readFileSync(envFile, "utf8")) as { env: Record<string, string>; cwd: string; pid: number };
    const home = path.join(live("alpha"), "home", "allegro");
    expect(seen.cwd).toBe(home);
    expect(seen.env).toMatchObject({
      CELL_ID: "alpha",
      CELL_HOME: live("alpha"),
      CELL_MEMBER: "agent:allegro",
      CELL_ROLE: "executor",
      HOME: home,
      HERMES_HOME: path.join(home, ".hermes"),
      LOG_LEVEL: "info",
    });
    expect(seen.env.HERMES_API_KEY).toBeUndefined();
    expect(seen.env.GITEA_TOKEN).toBeUndefined();
    expect(seen.env.ALPHA_TOKEN).toBeUndefined();
    expect(seen.env.LAZARUS_SECRET_ALPHA).toBeUndefined();
    expect(
      Object.keys(seen.env).filter(
        (k) =>
          !/^(PATH|LANG|LANGUAGE|TZ|TERM|USER|LOGNAME|SHELL|LC_.*|CELL_.*|HOME|HERMES_HOME|TMPDIR|LOG_LEVEL|LAZARUS_SPAWN_ID|LAZARUS_EXIT_FILE|PWD)$/.test(
            k,
          ),
      ),
    ).toEqual([]);
    const stat = readFileSync(`/proc/${seen.pid}/stat`, "utf8");
    expect(Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2])).toBe(member("alpha", "allegro").pid); // its own group, led by the recorded pid
    const manifest = seen.env.CELL_CREDENTIALS as string;
    expect(statSync(manifest).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(manifest, "utf8")).credentials).toEqual({
      GITEA_TOKEN: `${SECRET}-file`,
      ALPHA_TOKEN: SECRET,
    });
  });

  it("changes nothing when applied again", async () => {
    const ledgerBefore = readFileSync(path.join(state, "ledger.jsonl"), "utf8");
    const r = await run("apply", "--now", T(0, 1));
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("No changes.");
    expect(readFileSync(path.join(state, "ledger.jsonl"), "utf8")).toBe(ledgerBefore);
    expect((await run("plan", "--detailed-exitcode", "--now", T(0, 1))).exitCode).toBe(0);
  });

  it("shows status as JSON", async () => {
    const r = await run("status", "--json", "--now", T(0, 1));
    const s = JSON.parse(r.stdout) as {
      cells: {
        name: string;
        state: string;
        expiresAt: string;
        members: { identity: string; role: string; status: string; pid: number | null }[];
      }[];
    };
    const alpha = s.cells.find((c) => c.name === "alpha")!;
    expect(alpha.state).toBe("active");
    expect(alpha.members).toEqual([
      {
        identity: "agent:allegro",
        role: "executor",
        status: "running",
        pid: member("alpha", "allegro").pid,
        exitCode: null,
        exitReason: null,
        where: null,
      },
      {
        identity: "human:alexander",
        role: "director",
        status: "invited",
        pid: null,
        exitCode: null,
        exitReason: null,
        where: null,
      },
    ]);
  });

  it("downs a killed member, restarts it after its backoff, and revives the cell", async () => {
    const before = member("alpha", "allegro");
    process.kill(-(before.pid as number), "SIGKILL");
    await waitFor(() => !isAlive(before.pid, before.startTime));
    const p = await run("plan", "--json", "--now", T(0, 2));
    const planned = JSON.parse(p.stdout);
    expect(planned.actions.map((a: { action: string }) => a.action)).toEqual(["member-down", "cell-down"]);
    expect(planned.pending[0]).toEqual({
      cell: "alpha",
      member: "agent:allegro",
      reason: "agent:allegro: restart in 10s (backoff 10s after failure 1)",
    });
    expect((await run("apply", "--now", T(0, 2))).exitCode).toBe(0);
    expect(readRecord(live("alpha")).state).toBe("downed");
    expect(
      (await run("plan", "--detailed-exitcode", "--now", new Date(Date.parse(T(0, 2)) + 9_000).toISOString())).exitCode,
    ).toBe(0);
    const later = new Date(Date.parse(T(0, 2)) + 10_000).toISOString();
    const again = await run("plan", "--json", "--now", later);
    expect(JSON.parse(again.stdout).actions.map((a: { action: string }) => a.action)).toEqual(["restart", "revive"]);
    expect((await run("apply", "--now", later)).exitCode).toBe(0);
    const after = member("alpha", "allegro");
    expect(after.pid).not.toBe(before.pid);
    expect(isAlive(after.pid, after.startTime)).toBe(true);
    expect(after.restarts).toBe(1);
    expect(readRecord(live("alpha")).state).toBe("active");
  });

  it("invites an added member and stops a removed one", async () => {
    writeFileSync(
      path.join(config, "cells.d/alpha.yaml"),
      alphaYaml({
        members: [
          { identity: "agent:allegro", role: "executor", command: ["node", AGENT], env: { LOG_LEVEL: "info" } },
          { identity: "agent:ezra", role: "executor", command: ["node", AGENT] },
        ],
      }),
    );
    const p = await run("plan", "--json", "--now", T(0, 3));
    expect(
      JSON.parse(p.stdout).actions.map((a: { action: string; member: string }) => `${a.action} ${a.member}`),
    ).toEqual(["remove-member human:alexander", "invite agent:ezra"]);
    expect((await run("apply", "--now", T(0, 3))).exitCode).toBe(0);
    const ezra = member("alpha", "ezra");
    expect(isAlive(ezra.pid, ezra.startTime)).toBe(true);
    expect(readRecord(live("alpha")).members.map((m) => m.identity)).toEqual(["agent:allegro", "agent:ezra"]);
    const ezraPid = ezra.pid;
    writeFileSync(
      path.join(config, "cells.d/alpha.yaml"),
      alphaYaml({
        members: [
          { identity: "agent:allegro", role: "executor", command: ["node", AGENT], env: { LOG_LEVEL: "info" } },
        ],
      }),
    );
    expect((await run("apply", "--now", T(0, 4))).exitCode).toBe(0);
    expect(isAlive(ezraPid, ezra.startTime)).toBe(false);
    expect(existsSync(path.join(live("alpha"), "home", "ezra"))).toBe(true); // files are never deleted outside the graveyard
  });

  it("renews a cell whose ttl is raised", async () => {
    writeFileSync(
      path.join(config, "cells.d/alpha.yaml"),
      alphaYaml({
        ttl: "6h",
        members: [
          { identity: "agent:allegro", role: "executor", command: ["node", AGENT], env: { LOG_LEVEL: "info" } },
        ],
      }),
    );
    const r = await run("apply", "--now", T(4, 30));
    expect(r.stdout).toContain("~ renew");
    expect(r.stdout).toContain("- close         beta"); // beta kept its 4h ttl
    expect(readRecord(live("alpha")).expiresAt).toBe(new Date(Date.parse(T(6))).toISOString());
  });

  it("closes a cell past its ttl: members stopped, cell in the graveyard", async () => {
    const m = member("alpha", "allegro");
    writeFileSync(path.join(live("alpha"), "project", "work.txt"), "half-done work");
    mkdirSync(path.join(live("alpha"), "home", "allegro", "links"));
    symlinkSync(outside, path.join(live("alpha"), "home", "allegro", "links", "outside"));
    const r = await run("apply", "--now", T(6, 1));
    expect(r.stdout).toContain("ttl 6h expired");
    expect(isAlive(m.pid, m.startTime)).toBe(false);
    expect(existsSync(live("alpha"))).toBe(false);
    const grave = path.join(state, "graveyard", "alpha");
    expect(readRecord(grave).state).toBe("closed");
    expect(JSON.parse(readFileSync(path.join(grave, ".lazarus", "close.log"), "utf8"))).toMatchObject({
      cell: "alpha",
      reason: expect.stringContaining("ttl 6h expired"),
    });
    expect((await run("plan", "--detailed-exitcode", "--now", T(6, 2))).exitCode).toBe(0);
  });

  it("resurrects it with its files intact when declared active again within grace", async () => {
    writeFileSync(
      path.join(config, "cells.d/alpha.yaml"),
      alphaYaml({
        ttl: "8h",
        members: [
          { identity: "agent:allegro", role: "executor", command: ["node", AGENT], env: { LOG_LEVEL: "info" } },
        ],
      }),
    );
    const r = await run("apply", "--now", T(6, 20));
    expect(r.stdout).toContain("↺ resurrect");
    expect(readFileSync(path.join(live("alpha"), "project", "work.txt"), "utf8")).toBe("half-done work");
    const m = member("alpha", "allegro");
    expect(isAlive(m.pid, m.startTime)).toBe(true);
    expect(readRecord(live("alpha")).expiresAt).toBe(new Date(Date.parse(T(14, 20))).toISOString());
  });

  it("closes a cell whose file is removed, then scrubs it after grace without following symlinks", async () => {
    unlinkSync(path.join(config, "cells.d/alpha.yaml"));
    expect((await run("apply", "--now", T(7))).stdout).toContain("removed from cells.d");
    expect(existsSync(path.join(state, "graveyard", "alpha"))).toBe(true);
    const r = await run("apply", "--now", T(7, 31));
    expect(r.stdout).toContain("✗ scrub         alpha");
    expect(existsSync(path.join(state, "graveyard", "alpha"))).toBe(false);
    expect(readFileSync(path.join(outside, "precious.txt"), "utf8")).toBe("do not delete");
    const day = readdirSync(path.join(state, "archive"));
    expect(day).toEqual([T(7).slice(0, 10)]);
    const archived = path.join(state, "archive", day[0]!, "alpha");
    expect(readdirSync(archived).sort()).toEqual([
      "cell.json",
      "checkpoints",
      "close.log",
      "decisions.jsonl",
      "logs",
      "spawn.log",
    ]);
    expect(JSON.parse(readFileSync(path.join(archived, "cell.json"), "utf8")).state).toBe("archived");
  });

  it("purges the archive entry after retention", async () => {
    expect((await run("plan", "--detailed-exitcode", "--now", T(24 * 29))).exitCode).toBe(0);
    const r = await run("apply", "--now", T(24 * 31));
    expect(r.stdout).toContain("✗ purge         alpha");
    expect(existsSync(path.join(state, "archive", T(7).slice(0, 10), "alpha"))).toBe(false);
  });

  it("never writes a credential value to any output, log or record outside the manifest", async () => {
    const files: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.isFile() && e.name !== "credentials.json") files.push(p);
      }
    };
    walk(state);
    for (const f of files) expect(readFileSync(f, "utf8"), f).not.toContain(SECRET);
    for (const o of outputs) expect(o).not.toContain(SECRET);
  });

  it("keeps an intact ledger with every mutation", async () => {
    const v = await run("ledger", "verify");
    expect(v.exitCode, v.stderr).toBe(0);
    const actions = readFileSync(path.join(state, "ledger.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l).action as string);
    expect(actions).toEqual([
      "create",
      "create",
      "member-down",
      "cell-down",
      "restart",
      "revive",
      "remove-member",
      "invite",
      "remove-member",
      "renew",
      "checkpoint",
      "close",
      "checkpoint",
      "close",
      "scrub",
      "resurrect",
      "checkpoint",
      "close",
      "scrub",
      "purge",
      "purge",
    ]);
    expect(cellProcesses(state)).toEqual([]);
  });

  it("refuses a time earlier than the last recorded one", async () => {
    const r = await run("plan", "--now", T(1));
    expect(r.stderr).toContain("is earlier than the last recorded time");
  });
});

describe("quarantine", () => {
  let qConfig: string;
  let qState: string;
  const q = (...args: string[]) => lazarus([...args, "--config", qConfig, "--state-dir", qState]);
  beforeAll(() => {
    qState = tempDir("lazarus-state-");
    qConfig = configDir({
      "cells.d/good.yaml": cellYaml({ name: "good", members: [{ identity: "human:a", role: "director" }] }),
      "cells.d/fragile.yaml": cellYaml({
        name: "fragile",
        members: [{ identity: "agent:allegro", command: ["node", AGENT] }],
      }),
    });
  });
  afterAll(() => cleanup(qState, qConfig));

  it("keeps the cells of a broken file exactly as they are while the others converge", async () => {
    expect((await q("apply")).exitCode).toBe(0);
    const fragile = readRecord(path.join(qState, "cells", "fragile"));
    writeFileSync(
      path.join(qConfig, "cells.d/fragile.yaml"),
      "apiVersion: lazarus/v1\nkind: Cell\nmetadata:\n  name: fragile\nspec: {project: [\n",
    );
    writeFileSync(
      path.join(qConfig, "cells.d/good.yaml"),
      cellYaml({
        name: "good",
        members: [
          { identity: "human:a", role: "director" },
          { identity: "human:b", role: "observer" },
        ],
      }),
    );
    const v = await q("validate");
    expect(v.exitCode).toBe(1);
    expect(v.stderr).toMatch(/cells\.d\/fragile\.yaml:\d+:\d+: error: YAML syntax/);
    const p = await q("plan", "--json");
    expect(p.exitCode).toBe(1);
    const plan = JSON.parse(p.stdout);
    expect(plan.actions).toEqual([{ cell: "good", action: "invite", member: "human:b", reason: expect.any(String) }]);
    expect(plan.held).toEqual([{ cell: "fragile", file: "cells.d/fragile.yaml" }]);
    const text = await q("plan");
    expect(text.stdout).toContain("cells.d/fragile.yaml is quarantined");
    const a = await q("apply");
    expect(a.exitCode).toBe(1); // the broken file is an error, yet the good cell converged
    expect(readRecord(path.join(qState, "cells", "good")).members.map((m) => m.identity)).toEqual([
      "human:a",
      "human:b",
    ]);
    const after = readRecord(path.join(qState, "cells", "fragile"));
    expect(after.state).toBe("active");
    expect(isAlive(after.members[0]!.pid, after.members[0]!.startTime)).toBe(true);
    expect(after.members[0]!.pid).toBe(fragile.members[0]!.pid);
  });

  it("reconciles the cells again once the file is fixed, and a move between files is no change", async () => {
    unlinkSync(path.join(qConfig, "cells.d/fragile.yaml"));
    writeFileSync(
      path.join(qConfig, "cells.d/all.yaml"),
      `${cellYaml({ name: "fragile", members: [{ identity: "agent:allegro", command: ["node", AGENT] }] })}---\n# reformatted\n${cellYaml(
        {
          name: "good",
          members: [
            { identity: "human:a", role: "director" },
            { identity: "human:b", role: "observer" },
          ],
        },
      )
        .replace("kind: Cell\n", "")
        .replace("apiVersion: lazarus/v1\n", "apiVersion: lazarus/v1\nkind: Cell\n")}`,
    );
    renameSync(path.join(qConfig, "cells.d/good.yaml"), path.join(qConfig, "cells.d/good.yaml.bak"));
    const p = await q("plan", "--detailed-exitcode");
    expect(p.stdout + p.stderr).toContain("No changes.");
    expect(p.exitCode).toBe(0);
  });

  it("fails a second apply at once while one holds the state dir", async () => {
    const { acquireLock } = await import("../../src/lock/lock.js");
    const lock = await acquireLock(path.join(qState, "lazarus.lock"), "lazarus apply");
    try {
      const r = await q("apply", "--lock-timeout", "0s");
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(`another Lazarus holds the state dir: pid ${process.pid}`);
    } finally {
      await lock.release();
    }
  });
});

describe("the command line", () => {
  it.each([["validate"], ["plan"], ["apply"], ["status"], ["ledger", "verify"]])(
    "has --help for %s",
    async (...cmd) => {
      const r = await lazarus([...cmd, "--help"]);
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toContain("Usage: lazarus");
      expect(r.stdout).toContain("--state-dir");
    },
  );

  it("says which directory lacks cells.d", async () => {
    const d = tempDir();
    const r = await lazarus(["plan", "--config", d, "--state-dir", d]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("no cells.d/ directory in");
    cleanup(d);
  });
});

describe("a new cell's record", () => {
  it("lists the members in their declared order, whichever have a command, and says each ran as declared", async () => {
    const st = tempDir("lazarus-state-");
    const cfg = configDir({
      "cells.d/order.yaml": cellYaml({
        name: "order",
        members: [
          { identity: "human:alexander", role: "director" },
          { identity: "agent:allegro", role: "executor", command: ["node", AGENT] },
          { identity: "agent:ezra", role: "observer" },
          { identity: "agent:bezalel", role: "executor", command: ["node", AGENT] },
        ],
      }),
    });
    try {
      const r = await lazarus(["apply", "--yes", "--config", cfg, "--state-dir", st]);
      expect(r.exitCode, r.stderr).toBe(0);
      const rec = readRecord(path.join(st, "cells", "order"));
      expect(rec.members.map((m) => `${m.identity} ${m.status}`)).toEqual([
        "human:alexander invited",
        "agent:allegro running",
        "agent:ezra invited",
        "agent:bezalel running",
      ]);
      for (const m of rec.members.filter((x) => x.command)) expect(isAlive(m.pid, m.startTime)).toBe(true);
    } finally {
      cleanup(st, cfg); // ends the members it started (by their recorded process groups)
    }
  });
});
