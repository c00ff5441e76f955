// spec.runtime.python through the real CLI: a per-cell venv from local wheels that members run in,
// reused on restart, rebuilt (and planned) when the requirements change, gone at scrub; a failing
// pip fails its own cell only; untrusted requirements cannot reach past the config dir.
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cellYaml, cleanup, configDir, lazarus, readRecord, tempDir, waitFor } from "../helpers.js";
import { venvSkipReason, writeWheel } from "../python-helpers.js";

const skip = await venvSkipReason("process");
if (skip) console.warn(`SKIPPED: ${skip}`);

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));
const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();

// Writes what the member sees of Python into its home, then stays up.
const PROBE = [
  "sh",
  "-c",
  `python -c 'import os, sys; print(sys.prefix); print(os.environ["VIRTUAL_ENV"]); print(os.environ["PATH"].split(":")[0])' > "$HOME/prefix.tmp" && mv "$HOME/prefix.tmp" "$HOME/prefix.txt"; python -c 'import lzpkg; print(lzpkg.GREETING)' > "$HOME/import.tmp" 2>&1; mv "$HOME/import.tmp" "$HOME/import.txt"; exec sleep 600`,
];
const pyCell = (name: string, python: string, extra = "") =>
  cellYaml({
    name,
    grace: "1m",
    members: [{ identity: "agent:py", command: PROBE }],
    extra: `  runtime:\n    python: ${python}${extra}`,
  });

function setup(files: Record<string, string>) {
  const state = tempDir("lazarus-state-");
  const config = configDir(files);
  dirs.push(state, config);
  const run = (args: string[], env: Record<string, string> = {}) =>
    lazarus([...args, "--config", config, "--state-dir", state], { env });
  return { state, config, run };
}

const venvs = (cellDir: string): string[] => readdirSync(path.join(cellDir, ".lazarus", "venvs")).sort();

describe("spec.runtime.python: what is refused at load", () => {
  it("refuses options, URLs and paths in requirements, paths out of the config dir, and a FIFO, each at its line", async () => {
    const { config, run } = setup({
      "cells.d/a.yaml": pyCell("a", "{requirements: python/req.txt}"),
      "cells.d/b.yaml": pyCell("b", "{requirements: ../outside.txt, findLinks: /etc}"),
      "cells.d/c.yaml": pyCell("c", "{requirements: python/fifo}"),
      "cells.d/d.yaml": pyCell("d", "{findLinks: python/linked}"),
      "cells.d/ok.yaml": cellYaml({ name: "ok", members: [{ identity: "human:h", role: "director" }] }),
    });
    mkdirSync(path.join(config, "python"));
    writeFileSync(
      path.join(config, "python", "req.txt"),
      "# a comment\nlzpkg==0.1  # fine\n-r /etc/shadow\nevil @ file:///etc/passwd\n--index-url http://example.invalid/\n./local/dir\n",
    );
    execFileSync("mkfifo", [path.join(config, "python", "fifo")]);
    symlinkSync("/usr/lib", path.join(config, "python", "linked"));
    const r = await run(["validate"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(
      /python\/req\.txt:3:1: error: spec\.runtime\.python\.requirements: "-r": options are not allowed .*cell a, cells\.d\/a\.yaml:\d+/,
    );
    expect(r.stderr).toMatch(
      /python\/req\.txt:4:1: error: .*"evil @ file:\/\/\/etc\/passwd" is not a plain requirement/,
    );
    expect(r.stderr).toMatch(/python\/req\.txt:5:1: error: .*"--index-url": options are not allowed/);
    expect(r.stderr).toMatch(/python\/req\.txt:6:1: error: .*"\.\/local\/dir" is not a plain requirement/);
    expect(r.stderr).not.toMatch(/req\.txt:[12]:/);
    expect(r.stderr).toMatch(
      /cells\.d\/b\.yaml:\d+:\d+: error: spec\.runtime\.python\.requirements: "\.\.\/outside\.txt" leads out of the config dir/,
    );
    expect(r.stderr).toMatch(
      /cells\.d\/b\.yaml:\d+:\d+: error: spec\.runtime\.python\.findLinks: "\/etc" is an absolute path/,
    );
    expect(r.stderr).toMatch(
      /cells\.d\/c\.yaml:\d+:\d+: error: spec\.runtime\.python\.requirements: cannot read python\/fifo: it is a FIFO/,
    );
    expect(r.stderr).toMatch(
      /cells\.d\/d\.yaml:\d+:\d+: error: spec\.runtime\.python\.findLinks: python\/linked is not a directory \(a symbolic link\)/,
    );
    // The other file still loads: its cell is planned, the broken ones are held.
    const p = await run(["plan"]);
    expect(p.stdout).toMatch(/\+ create\s+ok/);
    expect(p.stdout).not.toMatch(/\+ create\s+(a|b|c|d)\s/);
  });
});

describe("spec.runtime.python: a host that cannot make venvs", () => {
  it("is a warning at the field in validate (the cell is not held); apply then fails that cell with the reason", async () => {
    const { run, state } = setup({
      "cells.d/w.yaml": pyCell("w", "{}"),
      "cells.d/ok.yaml": cellYaml({ name: "ok", members: [{ identity: "human:h", role: "director" }] }),
    });
    const env = { LAZARUS_PYTHON: "/bin/false" }; // a "python3" without a venv module
    const v = await run(["validate"], env);
    expect(v.exitCode).toBe(0);
    expect(v.stderr).toMatch(
      /cells\.d\/w\.yaml:\d+:\d+: warning: spec\.runtime\.python: this host cannot make the cell's venv: \/bin\/false -m venv is not available .*apt-get install python3-venv/,
    );
    const a = await run(["apply", "--yes"], env);
    expect(a.exitCode).toBe(1);
    expect(a.stdout).toMatch(/create\s+w .*failed: cell w: spec\.runtime\.python: \/bin\/false -m venv failed/);
    expect(a.stdout).toMatch(/create\s+ok .* done/);
    expect(readRecord(path.join(state, "cells", "w")).members.filter((m) => m.pid)).toEqual([]);
  }, 120_000);
});

describe.skipIf(skip !== undefined)("spec.runtime.python: a venv per cell", () => {
  let env: ReturnType<typeof setup>;
  const cellDir = (name: string) => path.join(env.state, "cells", name);
  const home = (name: string) => path.join(cellDir(name), "home", "py");
  beforeAll(async () => {
    env = setup({
      "cells.d/good.yaml": pyCell("good", "{requirements: python/requirements.txt, findLinks: python/wheels}"),
      "cells.d/bad.yaml": pyCell("bad", "{requirements: python/bad.txt, findLinks: python/wheels}"),
      "cells.d/bare.yaml": pyCell("bare", "{}"),
    });
    await writeWheel(path.join(env.config, "python", "wheels"), "lzpkg", "0.1", "hello from lzpkg 0.1");
    writeFileSync(path.join(env.config, "python", "requirements.txt"), "lzpkg\n");
    writeFileSync(path.join(env.config, "python", "bad.txt"), "lzpkg\nno-such-package-lzx\n");
  }, 60_000);

  it("builds each cell's venv at create; members run in it and import the local wheel; a failing pip fails its cell alone", async () => {
    const plan = await env.run(["plan", "--now", T(0)]);
    expect(plan.stdout).toMatch(
      /\+ create\s+good\s+new cell \(1 member, ttl 4h, python venv from python\/requirements\.txt\)/,
    );
    const r = await env.run(["apply", "--yes", "--now", T(0)]);
    expect(r.exitCode).toBe(1);
    // bad: one clear error naming the cell, the file and pip's own words; the others are created.
    expect(r.stdout).toMatch(
      /create\s+bad .*failed: cell bad: spec\.runtime\.python \(requirements python\/bad\.txt\): pip install failed \(exit 1\); packages come only from the wheels in python\/wheels:/,
    );
    expect(r.stdout).toContain("No matching distribution found for no-such-package-lzx");
    expect(r.stdout).toMatch(/create\s+good .* done/);
    expect(r.stdout).toMatch(/create\s+bare .* done/);
    expect(existsSync(path.join(cellDir("bad"), ".lazarus", "venvs")) ? venvs(cellDir("bad")) : []).toEqual([]); // no half venv left
    expect(readRecord(cellDir("bad")).members.filter((m) => m.pid)).toEqual([]);

    const good = readRecord(cellDir("good"));
    const venv = path.join(cellDir("good"), ".lazarus", "venvs", good.python!.digest);
    await waitFor(
      () => existsSync(path.join(home("good"), "prefix.txt")) && existsSync(path.join(home("good"), "import.txt")),
      30_000,
    );
    expect(
      readFileSync(path.join(home("good"), "prefix.txt"), "utf8")
        .split("\n")
        .slice(0, 3),
    ).toEqual([venv, venv, path.join(venv, "bin")]);
    expect(readFileSync(path.join(home("good"), "import.txt"), "utf8").trim()).toBe("hello from lzpkg 0.1");
    expect(JSON.parse(readFileSync(path.join(venv, "lazarus-venv.json"), "utf8"))).toMatchObject({
      digest: good.python!.digest,
      requirements: "python/requirements.txt",
    });

    const bare = readRecord(cellDir("bare"));
    const bareVenv = path.join(cellDir("bare"), ".lazarus", "venvs", bare.python!.digest);
    await waitFor(() => existsSync(path.join(home("bare"), "import.txt")), 30_000);
    expect(readFileSync(path.join(home("bare"), "prefix.txt"), "utf8").split("\n")[0]).toBe(bareVenv);
    expect(readFileSync(path.join(home("bare"), "import.txt"), "utf8")).toContain("No module named 'lzpkg'"); // a bare venv has only what python has
  }, 400_000);

  it("reuses the venv when a member restarts: same inode, same marker", async () => {
    const before = readRecord(cellDir("good"));
    const venv = path.join(cellDir("good"), ".lazarus", "venvs", before.python!.digest);
    const ino = statSync(venv).ino;
    const marker = readFileSync(path.join(venv, "lazarus-venv.json"), "utf8");
    const pid = before.members[0]!.pid!;
    process.kill(-pid, "SIGKILL"); // the member's own process group, which this test's apply started
    await waitFor(() => {
      try {
        return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.startsWith("Z") ?? true;
      } catch {
        return true;
      }
    }, 10_000);
    const r1 = await env.run(["apply", "--yes", "--now", T(1)]);
    const r2 = await env.run(["apply", "--yes", "--now", T(2)]);
    expect(`${r1.stdout}${r2.stdout}`).toMatch(/restart\s+good/);
    const after = readRecord(cellDir("good"));
    expect(after.members[0]!.pid).not.toBe(pid);
    expect(after.python).toEqual(before.python);
    expect(statSync(venv).ino).toBe(ino);
    expect(readFileSync(path.join(venv, "lazarus-venv.json"), "utf8")).toBe(marker);
  }, 300_000);

  it("plans a changed requirements file as an update, builds the new venv, restarts the member into it, and drops the old one", async () => {
    const before = readRecord(cellDir("good"));
    writeFileSync(path.join(env.config, "python", "requirements.txt"), "lzpkg==0.1\n");
    const plan = await env.run(["plan", "--now", T(3)]);
    expect(plan.stdout).toMatch(
      new RegExp(
        `~ update\\s+good\\s+python venv ${before.python!.digest} → [0-9a-f]{16} \\(requirements python/requirements\\.txt; built, then members restart\\)`,
      ),
    );
    expect(plan.stdout).not.toMatch(/update\s+bare/);
    const r = await env.run(["apply", "--yes", "--now", T(3)]);
    expect(r.stdout).toMatch(/update\s+good .* done/);
    const after = readRecord(cellDir("good"));
    expect(after.python!.digest).not.toBe(before.python!.digest);
    expect(venvs(cellDir("good"))).toEqual([after.python!.digest]);
    expect(after.members[0]!.pid).not.toBe(before.members[0]!.pid);
    expect(after.members[0]!.restarts).toBe(before.members[0]!.restarts + 1);
    const venv = path.join(cellDir("good"), ".lazarus", "venvs", after.python!.digest);
    await waitFor(() => readFileSync(path.join(home("good"), "prefix.txt"), "utf8").startsWith(`${venv}\n`), 30_000);
    expect((await env.run(["plan", "--now", T(4)])).stdout).not.toMatch(/update\s+good/);
  }, 300_000);

  it("carries the venv into the graveyard and scrub deletes it with the cell", async () => {
    writeFileSync(
      path.join(env.config, "cells.d", "good.yaml"),
      pyCell("good", "{requirements: python/requirements.txt, findLinks: python/wheels}").replace(
        "  owner:",
        "  state: closed\n  owner:",
      ),
    );
    const closed = await env.run(["apply", "--yes", "--now", T(5)]);
    expect(closed.stdout).toMatch(/close\s+good/);
    const grave = path.join(env.state, "graveyard", "good");
    expect(venvs(grave)).toHaveLength(1);
    const scrubbed = await env.run(["apply", "--yes", "--now", T(10)]);
    expect(scrubbed.stdout).toMatch(/scrub\s+good/);
    expect(existsSync(grave)).toBe(false);
    const archived = execFileSync("find", [path.join(env.state, "archive"), "-name", "lazarus-venv.json"], {
      encoding: "utf8",
    });
    expect(archived).toBe("");
  }, 300_000);
});

describe.skipIf(skip !== undefined)("spec.runtime.python: crash safety", () => {
  it("a build killed before its marker leaves nothing that looks complete; the next run rebuilds it and starts the member", async () => {
    const { state, run } = setup({ "cells.d/k.yaml": pyCell("k", "{}") });
    const killed = await run(["apply", "--yes", "--now", T(0)], { LAZARUS_FAILPOINT: "venv:before-marker" });
    expect(killed.signal).toBe("SIGKILL");
    const cell = path.join(state, "cells", "k");
    const [half] = venvs(cell);
    expect(half).toBeDefined();
    expect(existsSync(path.join(cell, ".lazarus", "venvs", half!, "bin", "python"))).toBe(true);
    expect(existsSync(path.join(cell, ".lazarus", "venvs", half!, "lazarus-venv.json"))).toBe(false);
    expect(readRecord(cell).python).toBeUndefined();
    expect(readRecord(cell).members.filter((m) => m.pid)).toEqual([]);
    const r = await run(["apply", "--yes", "--now", T(1)]);
    expect(r.exitCode).toBe(0);
    const rec = readRecord(cell);
    expect(rec.python?.digest).toBe(half);
    expect(existsSync(path.join(cell, ".lazarus", "venvs", half!, "lazarus-venv.json"))).toBe(true);
    await waitFor(() => existsSync(path.join(cell, "home", "py", "prefix.txt")), 30_000);
    expect(readFileSync(path.join(cell, "home", "py", "prefix.txt"), "utf8").split("\n")[0]).toBe(
      path.join(cell, ".lazarus", "venvs", half!),
    );
  }, 300_000);
});
