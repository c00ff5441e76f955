// Portfolios through the real CLI: files in members' homes, edits that touch only the affected
// members, SIGHUP or restart, shared model health, and the legacy import.
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AGENT, cellYaml, cleanup, configDir, isAlive, lazarus, readRecord, tempDir, waitFor } from "../helpers.js";

const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();
const portfolio = (name: string, models: string[], appliesTo = "") =>
  `apiVersion: lazarus/v1\nkind: Portfolio\nmetadata:\n  name: ${name}\nspec:\n${appliesTo}  models:\n${models.map((m) => `    - {model: ${m}, provider: p}`).join("\n")}\n`;

let state: string;
let config: string;
const run = (...args: string[]) => lazarus([...args, "--config", config, "--state-dir", state]);
const home = (who: string) => path.join(state, "cells", "team", "home", who);
const pfile = (who: string) => path.join(home(who), ".lazarus", "portfolio.json");
const member = (id: string) => readRecord(path.join(state, "cells", "team")).members.find((m) => m.identity === id)!;

beforeAll(() => {
  state = tempDir("lazarus-state-");
  config = configDir({
    "portfolios/coder.yaml": portfolio("coder", ["claude", "gemini"], "  appliesTo: {agents: [allegro]}\n"),
    "portfolios/default.yaml": portfolio("default", ["gpt", "claude"]),
    "cells.d/team.yaml": cellYaml({
      name: "team",
      members: [
        { identity: "agent:allegro", command: ["node", AGENT] },
        { identity: "agent:ezra", command: ["node", AGENT] },
        { identity: "agent:bezalel", command: ["node", AGENT] },
        { identity: "human:alexander", role: "director" },
      ],
    })
      .replace('      command: ["node"', '      onPortfolioChange: signal\n      command: ["node"')
      .replace(/(identity: agent:bezalel\n      role: executor\n)/, "$1      onPortfolioChange: restart\n"),
  });
});
afterAll(() => cleanup(state, config));

describe("portfolios", () => {
  it("give every agent its resolved portfolio in its home, named by LAZARUS_PORTFOLIO", async () => {
    const r = await run("apply", "--now", T(0));
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(JSON.parse(readFileSync(pfile("allegro"), "utf8"))).toMatchObject({
      name: "coder",
      selector: "agents",
      models: [{ model: "claude" }, { model: "gemini" }],
    });
    expect(JSON.parse(readFileSync(pfile("ezra"), "utf8"))).toMatchObject({ name: "default", selector: "default" });
    expect(existsSync(pfile("alexander"))).toBe(false);
    await waitFor(() => existsSync(path.join(home("allegro"), "env.json")));
    expect(JSON.parse(readFileSync(path.join(home("allegro"), "env.json"), "utf8")).env.LAZARUS_PORTFOLIO).toBe(
      pfile("allegro"),
    );
  });

  it("plan an edit as update-portfolio for exactly the members it affects, and signal or restart them", async () => {
    const ezraBefore = statSync(pfile("ezra")).mtimeMs;
    const allegroPid = member("agent:allegro").pid;
    const bezalelPid = member("agent:bezalel").pid;
    writeFileSync(path.join(config, "portfolios/default.yaml"), portfolio("default", ["gpt", "claude", "mistral"]));
    const p = await run("plan", "--json", "--now", T(1));
    expect(JSON.parse(p.stdout).actions).toEqual([
      {
        cell: "team",
        action: "update-portfolio",
        member: "agent:ezra",
        reason: "agent:ezra: portfolio default [gpt, claude] → [gpt, claude, mistral] (SIGHUP)",
      },
      {
        cell: "team",
        action: "update-portfolio",
        member: "agent:bezalel",
        reason: "agent:bezalel: portfolio default [gpt, claude] → [gpt, claude, mistral] (restart)",
      },
    ]);
    expect((await run("apply", "--now", T(1))).exitCode).toBe(0);
    expect(JSON.parse(readFileSync(pfile("ezra"), "utf8")).models.map((m: { model: string }) => m.model)).toEqual([
      "gpt",
      "claude",
      "mistral",
    ]);
    expect(statSync(pfile("ezra")).mtimeMs).toBeGreaterThan(ezraBefore);
    await waitFor(() => existsSync(path.join(home("ezra"), "hup.log")));
    expect(existsSync(path.join(home("allegro"), "hup.log"))).toBe(false);
    expect(member("agent:allegro").pid).toBe(allegroPid);
    expect(isAlive(member("agent:ezra").pid, member("agent:ezra").startTime)).toBe(true); // signalled, not killed
    expect(member("agent:bezalel").pid).not.toBe(bezalelPid);
    expect((await run("plan", "--detailed-exitcode", "--now", T(2))).exitCode).toBe(0);
  });

  it("leave portfolio files alone while a portfolio file is broken", async () => {
    writeFileSync(
      path.join(config, "portfolios/default.yaml"),
      "apiVersion: lazarus/v1\nkind: Portfolio\nmetadata: {name: default}\nspec: {modls: []}\n",
    );
    const p = await run("plan", "--json", "--now", T(3));
    expect(JSON.parse(p.stdout).actions).toEqual([]);
    expect(p.stderr + JSON.stringify(JSON.parse(p.stdout).diagnostics)).toContain("portfolios/default.yaml");
    writeFileSync(path.join(config, "portfolios/default.yaml"), portfolio("default", ["gpt", "claude", "mistral"]));
  });

  it("hold every portfolio while a portfolio file declares nothing, and drop it once the file is deleted", async () => {
    const coder = path.join(config, "portfolios/coder.yaml");
    const before = readFileSync(coder, "utf8");
    for (const emptied of ["", "# moved to another repo\n", "---\n"]) {
      writeFileSync(coder, emptied);
      const p = await run("plan", "--json", "--now", T(3));
      const out = JSON.parse(p.stdout) as {
        actions: unknown[];
        diagnostics: { file: string; severity: string; message: string }[];
      };
      expect(out.actions).toEqual([]); // allegro keeps coder, not the default
      expect(out.diagnostics).toEqual([
        expect.objectContaining({
          file: "portfolios/coder.yaml",
          severity: "warning",
          message: expect.stringContaining("declares no portfolios"),
        }),
      ]);
    }
    rmSync(coder);
    const gone = JSON.parse((await run("plan", "--json", "--now", T(3))).stdout) as {
      actions: { member: string; action: string }[];
    };
    expect(gone.actions).toEqual([expect.objectContaining({ action: "update-portfolio", member: "agent:allegro" })]);
    writeFileSync(coder, before);
  });

  it("share model health in a cell: a model failing for one agent is skipped for its teammates", async () => {
    for (const s of [0, 5, 10])
      expect(
        (
          await run(
            "portfolio",
            "report",
            "--cell",
            "team",
            "--model",
            "gpt",
            "--outcome",
            "rate_limit",
            "--agent",
            "agent:ezra",
            "--now",
            new Date(Date.parse(T(4)) + s * 1000).toISOString(),
          )
        ).exitCode,
      ).toBe(0);
    const r = await run("portfolio", "resolve", "--agent", "bezalel", "--cell", "team", "--json", "--now", T(5));
    expect(JSON.parse(r.stdout)).toMatchObject({
      ok: true,
      portfolio: "default",
      model: { model: "claude" },
      skipped: [{ model: "gpt" }],
    });
    const later = await run("portfolio", "resolve", "--agent", "bezalel", "--cell", "team", "--json", "--now", T(10));
    expect(JSON.parse(later.stdout).model.model).toBe("gpt");
  });

  it("resolve inside a cell from the member's own portfolio file and the cell's health, with no config", async () => {
    const cellDir = path.join(state, "cells", "team");
    const r = await lazarus(["portfolio", "resolve", "--cell", "team", "--json", "--now", T(5)], {
      env: { LAZARUS_PORTFOLIO: pfile("ezra"), CELL_ID: "team", CELL_HOME: cellDir },
    });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      portfolio: "default",
      selector: "default",
      model: { model: "claude" },
      skipped: [{ model: "gpt" }],
    });
  });

  it("explain which portfolio applies and why", async () => {
    const r = await run("portfolio", "explain", "--agent", "allegro");
    expect(r.stdout).toContain(
      "agent allegro: portfolio coder (portfolios/coder.yaml:4), because appliesTo.agents names allegro",
    );
  });

  it("report exhaustion as an error with the chain tried", async () => {
    const r = await run("portfolio", "resolve", "--agent", "allegro", "--attempt", "3", "--after-error", "auth");
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("portfolio coder exhausted after 2 attempt(s) ending in auth: tried claude, gemini");
  });

  it("import the legacy format into portfolios/ that validate", async () => {
    const dir = configDir({ "cells.d/empty.yaml": "" });
    const legacy = path.join(dir, "fallback-portfolios.yaml");
    writeFileSync(
      legacy,
      "agents:\n  allegro:\n    primary: {model: opus, provider: anthropic}\nrole_classes:\n  code:\n    primary: {model: coder-x, provider: q}\n",
    );
    const r = await lazarus(["portfolio", "import", legacy, "--config", dir]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect((await lazarus(["validate", "--config", dir])).exitCode).toBe(0);
    const explain = async (args: string[]) =>
      JSON.parse((await lazarus(["portfolio", "explain", "--json", "--config", dir, ...args])).stdout);
    expect((await explain(["--agent", "allegro", "--task-class", "code"])).models).toEqual(["opus"]);
    expect((await explain(["--agent", "timmy", "--task-class", "code"])).models).toEqual(["coder-x"]);
    expect((await explain(["--agent", "timmy"])).models).toEqual(["gemini-1.5-flash"]);
    expect((await lazarus(["portfolio", "import", legacy, "--config", dir])).stderr).toContain("exists; pass --force");
    cleanup(dir);
  });
});
