// What plan and status say: a quarantined file's cells are reported once as held (never "the
// cells match"), with exit 1; status NAME for an unknown cell says so; status --help describes the
// JSON status prints.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cellYaml, cleanup, configDir, lazarus, tempDir } from "../helpers.js";

let state: string;
let config: string;
const human = (name: string) => cellYaml({ name, members: [{ identity: "human:h", role: "director" }] });
const run = (...args: string[]) => lazarus([...args, "--config", config, "--state-dir", state]);

beforeAll(async () => {
  state = tempDir("lazarus-out-state-");
  config = configDir({ "cells.d/good.yaml": human("good"), "cells.d/fragile.yaml": human("fragile") });
  expect((await run("apply", "--yes")).exitCode).toBe(0);
  writeFileSync(
    path.join(config, "cells.d/fragile.yaml"),
    "apiVersion: lazarus/v1\nkind: Cell\nmetadata:\n  name: fragile\nspec: {project: [\n",
  );
});
afterAll(() => cleanup(state, config));

describe("plan with a quarantined file", () => {
  it("says once that the cell is held, never that the cells match, and exits 1", async () => {
    const r = await run("plan");
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/cells\.d\/fragile\.yaml:\d+:\d+: error/);
    expect(r.stdout).not.toContain("match the desired state");
    expect(r.stdout).not.toMatch(/^Plan:/m);
    expect(r.stdout.split("\n")[0]).toBe(
      "No changes to apply, but 1 cell is held: its file does not load (see the errors above); fix it and plan again.",
    );
    expect(r.stdout.match(/held/g)).toHaveLength(2); // the sentence and the cell's own line
    expect(r.stdout).toMatch(/held\s+fragile\s+cells\.d\/fragile\.yaml is quarantined/);
    expect((await run("plan", "--detailed-exitcode")).exitCode).toBe(1);
    const md = await run("plan", "--format", "markdown");
    expect(md.stdout).not.toContain("match the desired state");
    expect(md.stdout).toContain("**No changes to apply, but 1 cell is held:**");
  });
});

describe("status", () => {
  it("says so for an unknown NAME, with exit 1", async () => {
    const r = await lazarus(["status", "nope", "--state-dir", state]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr.trim()).toBe(
      "no cell named nope: none is live, in the graveyard or archived under this state dir; lazarus status lists them all",
    );
    expect(r.stdout).toBe("");
    const j = await lazarus(["status", "nope", "--json", "--state-dir", state]);
    expect(j.exitCode).toBe(1);
    expect(JSON.parse(j.stdout)).toEqual({ cells: [] });
    expect((await lazarus(["status", "good", "--state-dir", state])).exitCode).toBe(0);
  });

  it("--help names exactly the fields that --json prints", async () => {
    // GitOps state, so the revision fields are there too.
    const repo = tempDir("lazarus-out-repo-");
    try {
      const g = (...a: string[]) =>
        execa("git", ["-C", repo, ...a], {
          env: { GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@t", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@t" },
        });
      await g("init", "-q", "-b", "main");
      configDir({ "cells.d/good.yaml": human("good") }, repo);
      await g("add", "-A");
      await g("commit", "-qm", "one");
      await lazarus(["sync", "--repo", repo, "--state-dir", state]); // held (it would close fragile): recorded all the same
    } finally {
      cleanup(repo);
    }
    const help = (await lazarus(["status", "--help"])).stdout.replace(/\s+/g, " ");
    const shape = /--json print (\{.*\}) as JSON/.exec(help)?.[1];
    expect(shape, help).toBeDefined();
    const documented = new Set((shape as string).match(/[A-Za-z]+/g));
    // Keys marked "?" are present only sometimes, and so is everything inside them.
    const sometimes = new Set<string>();
    const scopes: boolean[] = [];
    let lastOptional = false;
    for (const t of (shape as string).match(/[A-Za-z]+\??|[{}]/g) ?? []) {
      if (t === "{") scopes.push((scopes[scopes.length - 1] ?? false) || lastOptional);
      else if (t === "}") scopes.pop();
      else {
        lastOptional = t.endsWith("?") || (scopes[scopes.length - 1] ?? false);
        if (lastOptional) sometimes.add(t.replace("?", ""));
      }
      if (t === "{" || t === "}") lastOptional = false;
    }
    const printed = new Set<string>();
    const walk = (v: unknown, depth: number): void => {
      if (Array.isArray(v)) v.forEach((x) => walk(x, depth));
      else if (v && typeof v === "object" && depth < 3)
        for (const [k, x] of Object.entries(v)) {
          printed.add(k);
          walk(x, depth + 1);
        }
    };
    const st = JSON.parse((await lazarus(["status", "--json", "--state-dir", state])).stdout) as {
      cells: { members: unknown[] }[];
    };
    expect(st.cells.some((c) => c.members.length > 0)).toBe(true);
    expect(st).toHaveProperty("revision.lastAttempted");
    walk(st, 0);
    for (const k of printed) expect(documented, `status --json prints "${k}", which --help does not name`).toContain(k);
    for (const k of documented)
      if (!sometimes.has(k)) expect(printed, `--help names "${k}", which status --json does not print`).toContain(k);
  });
});
