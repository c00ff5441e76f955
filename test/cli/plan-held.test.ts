// `plan` on a config whose only change is a new cell in a file that does not load: it says the file
// is quarantined and which cells it holds (the new one included), and what to do — never "No
// changes. The cells match the desired state." Through the real CLI, text, markdown and JSON.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cellYaml, cleanup, configDir, lazarus, tempDir } from "../helpers.js";

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));

const director = (name: string) => cellYaml({ name, members: [{ identity: "human:h", role: "director" }] });

function setup(files: Record<string, string>) {
  const config = configDir(files);
  const state = tempDir("lazarus-state-");
  dirs.push(config, state);
  return {
    config,
    state,
    run: (args: string[]) => lazarus([...args, "--config", config, "--state-dir", state], { timeoutMs: 30_000 }),
  };
}

describe("plan with a new cell in a quarantined file", () => {
  it("says the file is quarantined, names the new cell it holds, and what to do", async () => {
    const { run } = setup({ "cells.d/fresh.yaml": `${director("fresh")}  ttl: [\n` });
    const r = await run(["plan"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("cells.d/fresh.yaml:");
    expect(r.stdout).not.toContain("The cells match the desired state");
    expect(r.stdout).toContain(
      "No changes to apply, but 1 cell is held: its file does not load (see the errors above); fix it and plan again.",
    );
    expect(r.stdout).toMatch(
      /^ {2}! held\s+fresh\s+cells\.d\/fresh\.yaml is quarantined; the new cell is not created until it loads$/m,
    );
    const md = await run(["plan", "--format", "markdown"]);
    expect(md.stdout).toContain("- `fresh` — `cells.d/fresh.yaml` (new: not created until the file loads)");
    const json = JSON.parse((await run(["plan", "--json"])).stdout) as { held: unknown[] };
    expect(json.held).toEqual([{ cell: "fresh", file: "cells.d/fresh.yaml", new: true }]);
  });

  it("names a flow-style declaration and, when no name can be read, still says the file is quarantined", async () => {
    const { config, run } = setup({ "cells.d/ok.yaml": director("ok") });
    expect((await run(["apply", "--yes"])).exitCode).toBe(0);
    writeFileSync(
      path.join(config, "cells.d", "flow.yaml"),
      "apiVersion: lazarus/v1\nkind: Cell\nmetadata: {name: flowing}\nspec: {project: [\n",
    );
    writeFileSync(path.join(config, "cells.d", "garbled.yaml"), "{{{ this is not a cell\n");
    const r = await run(["plan"]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).not.toContain("The cells match the desired state");
    expect(r.stdout).toContain("No changes to apply, but 1 cell is held");
    expect(r.stdout).toMatch(
      /^ {2}! held\s+flowing\s+cells\.d\/flow\.yaml is quarantined; the new cell is not created until it loads$/m,
    );
    expect(r.stdout).toMatch(
      /^ {2}! held\s+\?\s+cells\.d\/garbled\.yaml is quarantined; no cell could be named from it, and none it declares is created, changed or closed until it loads$/m,
    );
  });
});
