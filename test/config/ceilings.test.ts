// The operator's ceilings on what a cell file may ask (LAZARUS_MAX_MEMORY, _PIDS, _CPU,
// _LOG_SIZE, _LOG_KEEP, _CELLS): an ask above one is an error at its line, the file is
// quarantined and its cells held (never closed); cells beyond the state dir's ceiling are held
// until there is room. Real CLI runs, real files, real member processes (process backend).
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cellYaml, cleanup, configDir, killAll, lazarus, readRecord, tempDir } from "../helpers.js";

const dirs: string[] = [];
const states: string[] = [];
afterAll(() => {
  for (const s of states) killAll(s);
  cleanup(...dirs, ...states);
});
const temp = (prefix: string, list = dirs): string => {
  const d = tempDir(prefix);
  list.push(d);
  return d;
};
const sleeper = { identity: "agent:a", command: ["sleep", "600"] };

interface Diag {
  file?: string;
  line?: number;
  field?: string;
  message: string;
  hint?: string;
}

describe("an ask above the operator's ceiling", () => {
  const asking = ["  resources: {memory: 3Gi, pids: 5000, cpu: 3}", "  logs: {maxSize: 300Mi, keep: 20}"].join("\n");
  const members = [
    { identity: "agent:own", command: ["sleep", "600"] },
    { identity: "agent:inherits", command: ["sleep", "600"] },
  ];
  // agent:own declares its own memory (line 13 of the file)
  const text = cellYaml({ name: "greedy", extra: asking, members }).replace(
    '      command: ["sleep","600"]\n    - identity: agent:inherits',
    '      command: ["sleep","600"]\n      resources: {memory: 4Gi}\n    - identity: agent:inherits',
  );
  const env = {
    LAZARUS_MAX_MEMORY: "2Gi",
    LAZARUS_DEFAULT_MEMORY: "1Gi",
    LAZARUS_MAX_PIDS: "4096",
    LAZARUS_MAX_CPU: "2",
    LAZARUS_MAX_LOG_SIZE: "256Mi",
    LAZARUS_MAX_LOG_KEEP: "10",
  };

  it("is an error at its file, line and field, naming the ceiling and the setting that raises it", async () => {
    const config = configDir({ "cells.d/greedy.yaml": text }, temp("lazarus-ceil-"));
    const r = await lazarus(["validate", "--json", "-c", config], { env });
    expect(r.exitCode).toBe(1);
    const all = (JSON.parse(r.stdout) as { diagnostics: (Diag & { severity: string })[] }).diagnostics;
    // the process backend enforces no limit, and says so once
    expect(all.filter((d) => d.severity === "warning").map((d) => [d.line, d.message])).toEqual([
      [8, "backend process enforces no resource limit: these limits are not applied"],
    ]);
    const diags = all
      .filter((d) => d.severity === "error")
      .map((d) => ({ line: d.line, field: d.field, message: d.message }));
    expect(diags).toEqual([
      {
        line: 8,
        field: "spec.resources.memory",
        message: "memory 3Gi is above this host's ceiling of 2Gi (LAZARUS_MAX_MEMORY)",
      },
      {
        line: 8,
        field: "spec.resources.pids",
        message: "pids 5000 is above this host's ceiling of 4096 (LAZARUS_MAX_PIDS)",
      },
      { line: 8, field: "spec.resources.cpu", message: "cpu 3 is above this host's ceiling of 2 (LAZARUS_MAX_CPU)" },
      {
        line: 9,
        field: "spec.logs.maxSize",
        message: "maxSize 300Mi is above this host's ceiling of 256Mi (LAZARUS_MAX_LOG_SIZE)",
      },
      {
        line: 9,
        field: "spec.logs.keep",
        message: "keep 20 is above this host's ceiling of 10 (LAZARUS_MAX_LOG_KEEP)",
      },
      {
        line: 14,
        field: "spec.members[0].resources.memory",
        message: "memory 4Gi is above this host's ceiling of 2Gi (LAZARUS_MAX_MEMORY)",
      },
    ]);
    const text1 = await lazarus(["validate", "-c", config], { env });
    expect(text1.stdout + text1.stderr).toContain(
      "cells.d/greedy.yaml:8:23: error: spec.resources.memory: memory 3Gi is above this host's ceiling of 2Gi (LAZARUS_MAX_MEMORY) (ask for at most 2Gi, or the operator raises LAZARUS_MAX_MEMORY where Lazarus runs)",
    );
    // the operator raises the ceilings: the same file is valid
    const raised = await lazarus(["validate", "-c", config], {
      env: {
        ...env,
        LAZARUS_MAX_MEMORY: "8Gi",
        LAZARUS_MAX_PIDS: "8192",
        LAZARUS_MAX_CPU: "4",
        LAZARUS_MAX_LOG_SIZE: "1Gi",
        LAZARUS_MAX_LOG_KEEP: "20",
      },
    });
    expect(raised.exitCode, raised.stdout + raised.stderr).toBe(0);
  });

  it("by a running cell's file quarantines the file and holds the cell: nothing is closed or stopped", async () => {
    const config = configDir(
      { "cells.d/greedy.yaml": cellYaml({ name: "greedy", members: [sleeper] }) },
      temp("lazarus-ceil-"),
    );
    const state = temp("lazarus-ceil-state-", states);
    const first = await lazarus(["apply", "--yes", "-c", config, "-s", state], { env });
    expect(first.exitCode, first.stderr).toBe(0);
    const before = readRecord(path.join(state, "cells", "greedy"));
    writeFileSync(path.join(config, "cells.d", "greedy.yaml"), text);
    const p = await lazarus(["plan", "--json", "-c", config, "-s", state], { env });
    const planned = JSON.parse(p.stdout) as { actions: unknown[]; held: { cell: string; file: string }[] };
    expect(planned.actions).toEqual([]);
    expect(planned.held).toEqual([{ cell: "greedy", file: "cells.d/greedy.yaml" }]);
    const again = await lazarus(["apply", "--yes", "-c", config, "-s", state], { env });
    expect(again.stdout + again.stderr).toContain("LAZARUS_MAX_MEMORY");
    const after = readRecord(path.join(state, "cells", "greedy"));
    expect(after.state).toBe("active");
    expect(after.members[0]?.pid).toBe(before.members[0]?.pid);
  });
});

describe("the ceiling on cells per state dir (LAZARUS_MAX_CELLS)", () => {
  it("holds the new cells beyond it with a diagnostic, creates them once there is room, and never closes one", async () => {
    const files = Object.fromEntries(
      ["a", "b", "c"].map((n) => [`cells.d/${n}.yaml`, cellYaml({ name: n, members: [sleeper] })]),
    );
    const config = configDir(files, temp("lazarus-maxcells-"));
    const state = temp("lazarus-maxcells-state-", states);
    const run = (args: string[], max: string) =>
      lazarus([...args, "-c", config, "-s", state], { env: { LAZARUS_MAX_CELLS: max } });
    const p = await run(["plan", "--json"], "2");
    const planned = JSON.parse(p.stdout) as {
      actions: { action: string; cell: string }[];
      pending: { cell: string; reason: string }[];
      diagnostics: Diag[];
    };
    expect(planned.actions.filter((a) => a.action === "create").map((a) => a.cell)).toEqual(["a", "b"]);
    expect(planned.pending).toContainEqual({
      cell: "c",
      reason: "held: this state dir holds 0 cells, and at most 2 (LAZARUS_MAX_CELLS)",
    });
    expect(planned.diagnostics).toContainEqual(
      expect.objectContaining({
        file: "cells.d/c.yaml",
        field: "metadata.name",
        message: "cell c is not created: the state dir is at its ceiling of 2 cells (LAZARUS_MAX_CELLS)",
      }),
    );
    expect((await run(["apply", "--yes"], "2")).exitCode).toBe(0);
    expect(readRecord(path.join(state, "cells", "a")).state).toBe("active");
    expect(readRecord(path.join(state, "cells", "b")).state).toBe("active");
    // a lower ceiling closes nothing: the cells that exist stay, only new ones wait
    const lowered = await run(["plan", "--json"], "1");
    expect((JSON.parse(lowered.stdout) as { actions: unknown[] }).actions).toEqual([]);
    expect((await run(["apply", "--yes"], "1")).exitCode).toBe(0);
    expect(readRecord(path.join(state, "cells", "a")).state).toBe("active");
    expect(readRecord(path.join(state, "cells", "b")).state).toBe("active");
    const raised = await run(["plan", "--json"], "3");
    expect(
      (JSON.parse(raised.stdout) as { actions: { action: string; cell: string }[] }).actions.map((a) => [
        a.action,
        a.cell,
      ]),
    ).toEqual([["create", "c"]]);
  });
});

describe("the ceiling settings themselves", () => {
  it("refuse a default above its ceiling, and a value that is not one, with a clear error and nothing done", async () => {
    const config = configDir({ "cells.d/a.yaml": cellYaml({ name: "a", members: [sleeper] }) }, temp("lazarus-ceil-"));
    const cases: [Record<string, string>, string][] = [
      [
        { LAZARUS_MAX_MEMORY: "1Gi", LAZARUS_DEFAULT_MEMORY: "2Gi" },
        "LAZARUS_DEFAULT_MEMORY (2Gi) is above LAZARUS_MAX_MEMORY (1Gi)",
      ],
      [{ LAZARUS_MAX_PIDS: "lots" }, 'LAZARUS_MAX_PIDS "lots" is not a whole number from 8 to 4194304'],
      [
        { LAZARUS_MAX_LOG_SIZE: "1Mi", LAZARUS_LOG_MAX_SIZE: "10Mi" },
        'LAZARUS_LOG_MAX_SIZE "10Mi" is above LAZARUS_MAX_LOG_SIZE (1Mi)',
      ],
      [{ LAZARUS_HOST_NETWORK: "Deny" }, 'LAZARUS_HOST_NETWORK "Deny" is not one of allow, deny'],
    ];
    for (const [env, message] of cases) {
      const r = await lazarus(["validate", "-c", config], { env });
      expect(r.exitCode, JSON.stringify(env)).toBe(1);
      expect(r.stderr).toContain(message);
    }
  });
});
