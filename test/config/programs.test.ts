// A member command's paths relative to the config dir stay in it: "../x", "./a/../../x" and a
// symbolic link that leads out are errors at the command's line through the real CLI (the file is
// quarantined, its cells held), while links that stay inside and plain programs still load.
import { chmodSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cellYaml, cleanup, configDir, lazarus, tempDir } from "../helpers.js";

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));

const cell = (name: string, command: string[]) => cellYaml({ name, members: [{ identity: "agent:a", command }] });
const commandLine = (yaml: string): number => yaml.split("\n").findIndex((l) => l.includes("command:")) + 1;

// A config dir inside a parent that also holds an executable outside it: parent/outside/x.
function setup(files: Record<string, string>) {
  const parent = tempDir("lazarus-parent-");
  dirs.push(parent);
  mkdirSync(path.join(parent, "outside"));
  writeFileSync(path.join(parent, "outside", "x"), "#!/bin/sh\necho outside\n");
  chmodSync(path.join(parent, "outside", "x"), 0o755);
  const config = path.join(parent, "config");
  mkdirSync(config);
  configDir(files, config);
  return { parent, config };
}

interface Validated {
  cells: string[];
  diagnostics: { severity: string; file: string; line: number; field: string; message: string; hint: string }[];
}

async function validate(config: string): Promise<{ exitCode: number | undefined; out: Validated }> {
  const r = await lazarus(["validate", "--json", "--config", config], { timeoutMs: 30_000 });
  return { exitCode: r.exitCode, out: JSON.parse(r.stdout) as Validated };
}

describe("member commands relative to the config dir", () => {
  it("refuse ../ and ./a/../../ paths at the command's line, and load every other file", async () => {
    const up = cell("up", ["../outside/x"]);
    const sneaky = cell("sneaky", ["/bin/sh", "./a/../../outside/x"]);
    const { config } = setup({
      "cells.d/up.yaml": up,
      "cells.d/sneaky.yaml": sneaky,
      "cells.d/ok.yaml": cell("ok", ["/bin/sh", "-c", "exit 0"]),
    });
    const { exitCode, out } = await validate(config);
    expect(exitCode).toBe(1);
    expect(out.cells).toEqual(["ok"]);
    const errors = out.diagnostics.filter((d) => d.severity === "error");
    expect(errors).toEqual([
      expect.objectContaining({
        file: "cells.d/sneaky.yaml",
        line: commandLine(sneaky),
        field: "spec.members[0].command[1]",
        message: '"./a/../../outside/x" leads out of the config dir; paths starting with ./ are read from inside it',
        hint: expect.stringContaining("absolute path"),
      }),
      expect.objectContaining({
        file: "cells.d/up.yaml",
        line: commandLine(up),
        field: "spec.members[0].command[0]",
        message: '"../outside/x" leads out of the config dir; paths starting with ./ are read from inside it',
      }),
    ]);
    // No "not found" warning on top of the error.
    expect(out.diagnostics.filter((d) => d.severity === "warning")).toEqual([]);
  });

  it("refuse a program or argument that is a symbolic link (or under one) leading out, and take links that stay inside", async () => {
    const linked = cell("linked", ["./bin/tool"]);
    const underLink = cell("under", ["/bin/sh", "./lib/x"]);
    const inside = cell("inside", ["./bin/ok"]);
    const { parent, config } = setup({
      "cells.d/linked.yaml": linked,
      "cells.d/under.yaml": underLink,
      "cells.d/inside.yaml": inside,
    });
    mkdirSync(path.join(config, "bin"));
    mkdirSync(path.join(config, "real"));
    symlinkSync(path.join(parent, "outside", "x"), path.join(config, "bin", "tool"));
    symlinkSync(path.join(parent, "outside"), path.join(config, "lib"));
    writeFileSync(path.join(config, "real", "ok"), "#!/bin/sh\n");
    chmodSync(path.join(config, "real", "ok"), 0o755);
    symlinkSync("../real/ok", path.join(config, "bin", "ok"));
    const { exitCode, out } = await validate(config);
    expect(exitCode).toBe(1);
    expect(out.cells).toEqual(["inside"]);
    const real = (p: string) => path.join(parent, "outside", p);
    expect(out.diagnostics).toEqual([
      expect.objectContaining({
        severity: "error",
        file: "cells.d/linked.yaml",
        line: commandLine(linked),
        field: "spec.members[0].command[0]",
        message: `"./bin/tool" is a symbolic link (or lies under one) to ${real("x")}, outside the config dir`,
      }),
      expect.objectContaining({
        severity: "error",
        file: "cells.d/under.yaml",
        line: commandLine(underLink),
        field: "spec.members[0].command[1]",
        message: `"./lib/x" is a symbolic link (or lies under one) to ${real("x")}, outside the config dir`,
      }),
    ]);
  });

  it("plan holds the refused cell: nothing is created from a command that leads out", async () => {
    const { config } = setup({ "cells.d/up.yaml": cell("up", ["../outside/x"]) });
    const state = tempDir("lazarus-state-");
    dirs.push(state);
    const r = await lazarus(["apply", "--config", config, "--state-dir", state], { timeoutMs: 30_000 });
    expect(r.stderr).toContain('"../outside/x" leads out of the config dir');
    expect(r.stdout).toMatch(
      /held\s+up\s+cells\.d\/up\.yaml is quarantined; the new cell is not created until it loads/,
    );
    expect(existsSync(path.join(state, "cells", "up"))).toBe(false);
  });
});
