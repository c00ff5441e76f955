// What `lazarus plan` loads: only the read-only half of the engine. Each module it loads costs
// start-up on every plan (bench/README.md, the plan section); execa, apply and the backends once
// crept back in through an eager import, unnoticed until measured. A module-load hook records
// every URL the real CLI loads.
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, cellYaml, cleanup, configDir, tempDir } from "../helpers.js";

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));

describe("lazarus plan's modules", () => {
  it("leave out execa, apply, the backends' implementations and the daemon", () => {
    const work = tempDir();
    const config = configDir({ "cells.d/a.yaml": cellYaml({ name: "c1" }) });
    dirs.push(work, config);
    const log = path.join(work, "loaded.txt");
    const hooks = path.join(work, "hooks.mjs");
    writeFileSync(
      hooks,
      `import { appendFileSync } from "node:fs";\nexport async function load(url, context, next) {\n  appendFileSync(${JSON.stringify(log)}, url + "\\n");\n  return next(url, context);\n}\n`,
    );
    const register = path.join(work, "register.mjs");
    writeFileSync(
      register,
      `import { register } from "node:module";\nregister(${JSON.stringify(new URL(`file://${hooks}`).href)});\n`,
    );
    const r = spawnSync(
      "node",
      ["--import", register, CLI, "plan", "--json", "--config", config, "--state-dir", path.join(work, "state")],
      { encoding: "utf8" },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).actions).toHaveLength(1);
    const loaded = readFileSync(log, "utf8").split("\n");
    expect(loaded.some((u) => u.endsWith("/dist/compute.js"))).toBe(true); // the hook saw the CLI's modules
    const unwanted = loaded.filter((u) =>
      /\/node_modules\/(execa|pino|prom-client|chokidar|node-cron|tar|@kubernetes)\/|\/dist\/(apply\/apply|engine|backends\/registry|backends\/process|daemon\/[^/]+)\.js$/.test(
        u,
      ),
    );
    expect(unwanted).toEqual([]);
  });
});
