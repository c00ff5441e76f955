// lazarus completion: the bash script is sourced by a real bash and driven as bash's completion
// would drive it (COMP_WORDS/COMP_CWORD, then COMPREPLY); zsh and fish scripts are parsed by their
// shells where installed (`zsh -n`, `fish -n`).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { which } from "../../src/util/which.js";
import { ROOT, cleanup, configDir, lazarus, tempDir } from "../helpers.js";

let dir: string;

let bashScript = "";

beforeAll(async () => {
  dir = tempDir("lazarus-completion-");
  configDir({ "cells.d/two.yaml": "apiVersion: lazarus/v1\nkind: Cell\nmetadata:\n  name: alpha-1\nspec:\n  project: x\n---\napiVersion: lazarus/v1\nkind: Cell\nmetadata:\n  name: \"beta\"\n" }, path.join(dir, "cfg"));
  const r = await lazarus(["completion", "bash"]);
  expect(r.exitCode, r.stderr).toBe(0);
  bashScript = r.stdout;
  writeFileSync(path.join(dir, "lazarus.bash"), bashScript);
});
afterAll(() => cleanup(dir));

// What bash's completion would offer for this command line (the last word is being completed).
async function complete(...line: string[]): Promise<string[]> {
  const words = line.map((w) => `'${w.replaceAll("'", "'\\''")}'`).join(" ");
  const script = `source ./lazarus.bash\nCOMP_WORDS=(${words}); COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 ))\n_lazarus\nprintf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = await execa("bash", ["--norc", "--noprofile", "-c", script], { cwd: dir, env: { LAZARUS_STATE_DIR: "" } });
  return r.stdout.split("\n").filter(Boolean);
}

describe("lazarus completion", () => {
  it("bash: completes every command help lists", async () => {
    const help = (await lazarus(["--help"])).stdout;
    const listed = [...help.slice(help.indexOf("Commands:")).matchAll(/^ {2}(\S+)/gm)].map((m) => m[1]);
    expect(listed).toContain("completion");
    expect(listed).toContain("service");
    expect(await complete("lazarus", "")).toEqual(listed);
    expect(await complete("lazarus", "pl")).toEqual(["plan"]);
    expect(await complete("lazarus", "--debug", "wat")).toEqual(["watch"]);
  });

  it("bash: completes subcommands, options, choices and directories", async () => {
    expect(await complete("lazarus", "portfolio", "")).toEqual(["resolve", "report", "explain", "import"]);
    expect(await complete("lazarus", "service", "")).toEqual(["install", "uninstall"]);
    expect(await complete("lazarus", "plan", "--js")).toEqual(["--json"]);
    expect(await complete("lazarus", "service", "install", "--u")).toEqual(["--user", "--unit-dir"]);
    expect(await complete("lazarus", "watch", "--log-level", "")).toEqual(["trace", "debug", "info", "warn", "error", "silent"]);
    expect(await complete("lazarus", "--debug", "watch", "--log-level", "d")).toEqual(["debug"]);
    expect(await complete("lazarus", "status", "--config", "cf")).toEqual(["cfg"]);
    expect(await complete("lazarus", "completion", "--", "")).toEqual([]); // nothing after --
  });

  it("bash: completes cell names from the --config dir's cells.d/ and the state dir", async () => {
    expect(await complete("lazarus", "status", "-c", "cfg", "")).toEqual(["alpha-1", "beta"]);
    expect(await complete("lazarus", "checkpoint", "--config", "cfg", "b")).toEqual(["beta"]);
    expect(await complete("lazarus", "accept", "-c", "cfg", "alpha-1", "")).toEqual([]); // the second argument is an identity
    expect(await complete("lazarus", "status", "")).toEqual([]); // no cells.d/ in the cwd
    const state = tempDir("lazarus-completion-state-");
    try {
      mkdirSync(path.join(state, "cells", "gamma"), { recursive: true });
      expect(await complete("lazarus", "status", "-c", "cfg", "--state-dir", state, "")).toEqual(["alpha-1", "beta", "gamma"]);
      expect(await complete("lazarus", "verify", "--state-dir", state, "beta", "")).toEqual(["gamma"]); // verify takes several
    } finally {
      cleanup(state);
    }
  });

  it("zsh and fish scripts parse (where those shells are installed)", async (ctx) => {
    const zsh = which("zsh", process.env.PATH);
    const fish = which("fish", process.env.PATH);
    const z = await lazarus(["completion", "zsh"]);
    const f = await lazarus(["completion", "fish"]);
    expect(z.exitCode).toBe(0);
    expect(f.exitCode).toBe(0);
    expect(z.stdout).toContain("bashcompinit");
    expect(f.stdout).toMatch(/^complete -c lazarus -n '__fish_use_subcommand' -a 'watch' /m);
    if (!zsh && !fish) ctx.skip(true, "neither zsh nor fish is installed: only the bash script is exercised");
    if (zsh) {
      writeFileSync(path.join(dir, "_lazarus.zsh"), z.stdout);
      expect((await execa(zsh, ["-n", path.join(dir, "_lazarus.zsh")], { reject: false })).exitCode).toBe(0);
    }
    if (fish) {
      writeFileSync(path.join(dir, "lazarus.fish"), f.stdout);
      expect((await execa(fish, ["-n", path.join(dir, "lazarus.fish")], { reject: false })).exitCode).toBe(0);
    }
  });

  it("refuses a shell it does not know, and --version prints the package version", async () => {
    const r = await lazarus(["completion", "tcsh"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('no completion for shell "tcsh": use one of bash, zsh, fish');
    const v = await lazarus(["--version"]);
    expect(v.exitCode).toBe(0);
    expect(v.stdout.trim()).toBe((JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string }).version);
  });
});
