// lazarus completion: each script is loaded by its real shell and driven as that shell's completion
// would drive it: bash through COMP_WORDS/COMP_CWORD, then COMPREPLY; zsh through bashcompinit's
// own compgen (what its _bash_complete runs), then the prefix match compadd makes; fish through
// `complete -C` (fish's own non-interactive completion). .ci/run installs zsh and fish.
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
  configDir(
    {
      "cells.d/two.yaml":
        'apiVersion: lazarus/v1\nkind: Cell\nmetadata:\n  name: alpha-1\nspec:\n  project: x\n---\napiVersion: lazarus/v1\nkind: Cell\nmetadata:\n  name: "beta"\n',
    },
    path.join(dir, "cfg"),
  );
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

// What zsh would offer for this command line: _bash_complete's steps without the widget (compadd
// needs a live line editor): its COMP_WORDS/COMP_CWORD, compgen -F, then compadd's prefix match.
async function completeZsh(...line: string[]): Promise<string[]> {
  const words = line.map((w) => `'${w.replaceAll("'", "'\\''")}'`).join(" ");
  const script = [
    "source ./lazarus.zsh",
    `words=(${words}); CURRENT=\${#words}`,
    'COMP_CWORD=$((CURRENT - 1)); COMP_WORDS=("${words[@]}")',
    'matches=( ${(f)"$(compgen -F _lazarus -- ${words[CURRENT]})"} )',
    "print -l -- ${(M)matches:#${words[CURRENT]}*}",
  ].join("\n");
  const r = await execa(zsh as string, ["-f", "-c", script], { cwd: dir, env: { LAZARUS_STATE_DIR: "", HOME: dir } });
  return r.stdout.split("\n").filter(Boolean);
}

// What fish would offer (names only, without the descriptions).
async function completeFish(line: string): Promise<string[]> {
  const r = await execa(
    fish as string,
    ["--no-config", "-c", `source ./lazarus.fish; complete -C ${JSON.stringify(line)}`],
    { cwd: dir, env: { LAZARUS_STATE_DIR: "", HOME: dir } },
  );
  return r.stdout
    .split("\n")
    .filter(Boolean)
    .map((l) => l.split("\t")[0] as string);
}

const zsh = which("zsh", process.env.PATH);
const fish = which("fish", process.env.PATH);

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
    expect(await complete("lazarus", "watch", "--log-level", "")).toEqual([
      "trace",
      "debug",
      "info",
      "warn",
      "error",
      "silent",
    ]);
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
      expect(await complete("lazarus", "status", "-c", "cfg", "--state-dir", state, "")).toEqual([
        "alpha-1",
        "beta",
        "gamma",
      ]);
      expect(await complete("lazarus", "verify", "--state-dir", state, "beta", "")).toEqual(["gamma"]); // verify takes several
    } finally {
      cleanup(state);
    }
  });

  it("zsh and fish scripts load in their shells", async () => {
    const z = await lazarus(["completion", "zsh"]);
    const f = await lazarus(["completion", "fish"]);
    expect(z.exitCode).toBe(0);
    expect(f.exitCode).toBe(0);
    expect(z.stdout).toContain("bashcompinit");
    expect(f.stdout).toMatch(/^complete -c lazarus -n '__fish_use_subcommand' -a 'watch' /m);
    writeFileSync(path.join(dir, "lazarus.zsh"), z.stdout);
    writeFileSync(path.join(dir, "lazarus.fish"), f.stdout);
    if (zsh) {
      expect((await execa(zsh, ["-n", path.join(dir, "lazarus.zsh")], { reject: false })).exitCode).toBe(0);
      const loaded = await execa(zsh, ["-f", "-c", "source ./lazarus.zsh && print -- ${_comps[lazarus]}"], {
        cwd: dir,
        env: { HOME: dir },
        reject: false,
      });
      expect(loaded.stderr).toBe("");
      expect(loaded.stdout).toContain("_bash_complete -F _lazarus");
    }
    if (fish) expect((await execa(fish, ["-n", path.join(dir, "lazarus.fish")], { reject: false })).exitCode).toBe(0);
  });

  it.skipIf(!zsh)("zsh: completes commands, options, choices and cell names as bash does", async () => {
    const help = (await lazarus(["--help"])).stdout;
    const listed = [...help.slice(help.indexOf("Commands:")).matchAll(/^ {2}(\S+)/gm)].map((m) => m[1]);
    expect(await completeZsh("lazarus", "")).toEqual(listed);
    expect(await completeZsh("lazarus", "pl")).toEqual(["plan"]);
    expect(await completeZsh("lazarus", "--debug", "wat")).toEqual(["watch"]);
    expect(await completeZsh("lazarus", "portfolio", "")).toEqual(["resolve", "report", "explain", "import"]);
    expect(await completeZsh("lazarus", "service", "install", "--u")).toEqual(["--user", "--unit-dir"]);
    expect(await completeZsh("lazarus", "--debug", "watch", "--log-level", "d")).toEqual(["debug"]);
    expect(await completeZsh("lazarus", "status", "-c", "cfg", "")).toEqual(["alpha-1", "beta"]);
    expect(await completeZsh("lazarus", "accept", "-c", "cfg", "alpha-1", "")).toEqual([]);
  });

  it.skipIf(!fish)("fish: completes commands, options, choices and cell names", async () => {
    expect(await completeFish("lazarus pl")).toEqual(["plan"]);
    expect(await completeFish("lazarus portfolio ")).toEqual(
      expect.arrayContaining(["resolve", "report", "explain", "import"]),
    );
    expect(await completeFish("lazarus service install --u")).toEqual(["--unit-dir", "--user"]);
    expect(await completeFish("lazarus watch --log-level d")).toEqual(["debug"]);
    expect(await completeFish("lazarus status -c cfg ")).toEqual(["alpha-1", "beta"]);
  });

  it("refuses a shell it does not know, and --version prints the package version", async () => {
    const r = await lazarus(["completion", "tcsh"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('no completion for shell "tcsh": use one of bash, zsh, fish');
    const v = await lazarus(["--version"]);
    expect(v.exitCode).toBe(0);
    expect(v.stdout.trim()).toBe(
      (JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string }).version,
    );
  });
});
