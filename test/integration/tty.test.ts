// On a terminal, apply asks before acting and the plan is coloured; `script` gives the CLI a real
// pseudo-terminal (util-linux, present on Debian).
import { existsSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, cellYaml, cleanup, configDir, tempDir } from "../helpers.js";

const config = configDir({
  "cells.d/t.yaml": cellYaml({ name: "t", members: [{ identity: "human:h", role: "director" }] }),
});
const state = tempDir("lazarus-state-");
const scratch = [tempDir(), tempDir()];
afterAll(() => cleanup(config, state, ...scratch));

const onTty = (args: string, input: string, env: Record<string, string> = {}) =>
  execa("script", ["-qec", `node ${CLI} ${args}`, "/dev/null"], {
    input,
    reject: false,
    env: { TERM: "xterm", ...env },
    extendEnv: false,
  });

describe("on a terminal", () => {
  it("apply asks for confirmation and does nothing unless the answer is yes", async () => {
    const r = await onTty(`apply --config ${config} --state-dir ${state}`, "no\n", { PATH: process.env.PATH ?? "" });
    expect(r.stdout).toContain("Only 'yes' will be accepted");
    expect(r.stdout).toContain("Apply cancelled.");
    expect(existsSync(path.join(state, "cells", "t"))).toBe(false);
    const yes = await onTty(`apply --config ${config} --state-dir ${state}`, "yes\n", { PATH: process.env.PATH ?? "" });
    expect(yes.stdout).toContain("Apply complete: 1 applied");
    expect(existsSync(path.join(state, "cells", "t"))).toBe(true);
  });

  it("colours the plan on a terminal, but never with NO_COLOR", async () => {
    const coloured = await onTty(`plan --config ${config} --state-dir ${scratch[0]}`, "", {
      PATH: process.env.PATH ?? "",
    });
    expect(coloured.stdout).toMatch(/\x1b\[32m\+/);
    const plain = await onTty(`plan --config ${config} --state-dir ${scratch[1]}`, "", {
      PATH: process.env.PATH ?? "",
      NO_COLOR: "1",
    });
    expect(plain.stdout).toContain("+ create");
    expect(plain.stdout).not.toMatch(/\x1b\[3\dm/);
  });
});
