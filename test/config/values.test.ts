// Values the schema's shape allows but that cannot work: each is refused at its line.
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig, loadFileText } from "../../src/config/load.js";
import { formatDiagnostic } from "../../src/config/diagnostics.js";
import { cellYaml, cleanup, configDir } from "../helpers.js";

const file = "cells.d/a.yaml";
const diagsOf = (text: string) => loadFileText(file, text).diagnostics.map(formatDiagnostic);
const agent = (extra: Record<string, unknown> = {}) => ({ identity: "agent:a", command: ["node", "a.mjs"], ...extra });

describe("values that cannot work", () => {
  it.each([
    [
      "heartbeat: 0s (would down a running member at once)",
      { name: "c1", members: [agent({ heartbeat: "0s" })] },
      12,
      "spec.members[0].heartbeat: heartbeat 0s is shorter than the 5s minimum",
    ],
    [
      "a 1s heartbeat",
      { name: "c1", members: [agent({ heartbeat: "1s" })] },
      12,
      "heartbeat 1s is shorter than the 5s minimum",
    ],
    [
      "downedTimeout: 0s",
      { name: "c1", extra: "  downedTimeout: 0s" },
      8,
      "spec.downedTimeout: downedTimeout 0s is shorter than the 1m minimum",
    ],
    [
      "a downedTimeout of a year",
      { name: "c1", extra: "  downedTimeout: 365d" },
      8,
      "downedTimeout exceeds the 7d maximum",
    ],
    [
      "a checkpoint every second",
      { name: "c1", extra: '  checkpoint: {schedule: "* * * * * *"}' },
      8,
      '"* * * * * *" fires more often than once a minute',
    ],
    [
      "a checkpoint every 30 seconds",
      { name: "c1", extra: '  checkpoint: {schedule: "*/30 * * * * *"}' },
      8,
      "fires more often than once a minute",
    ],
    ["a grace of a year", { name: "c1", grace: "365d" }, 8, "spec.grace: grace exceeds the 7d maximum"],
    [
      "a retention of ten years",
      { name: "c1", retention: "3650d" },
      8,
      "spec.retention: retention exceeds the 366d maximum",
    ],
    [
      "an empty program",
      { name: "c1", members: [{ identity: "agent:a", command: [""] }] },
      11,
      "spec.members[0].command[0]: the program to run is empty",
    ],
    [
      "a blank program",
      { name: "c1", members: [{ identity: "agent:a", command: [" ", "x"] }] },
      11,
      "the program to run is empty",
    ],
    [
      "an empty command",
      { name: "c1", members: [{ identity: "agent:a", command: [] }] },
      11,
      "spec.members[0].command: must have at least 1 item: a command needs the program to run",
    ],
    [
      "a grace whose date overflows",
      { name: "c1", grace: "99999999999999999999d" },
      8,
      'spec.grace: "99999999999999999999d" is not valid',
    ],
    [
      "a retention whose date overflows",
      { name: "c1", retention: "9999999999999999h" },
      8,
      'spec.retention: "9999999999999999h" is not valid',
    ],
    ["an inviteTtl over its cap", { name: "c1", extra: "  inviteTtl: 16m" }, 8, "inviteTtl exceeds the 15m maximum"],
  ])("refuses %s at its line", (_what, opts, line, message) => {
    const d = diagsOf(cellYaml(opts as Parameters<typeof cellYaml>[0]));
    expect(d).toHaveLength(1);
    expect(d[0]).toMatch(new RegExp(`^cells\\.d/a\\.yaml:${line}:\\d+: error: `));
    expect(d[0]).toContain(message);
  });

  it.each([
    ["a 5s heartbeat", { name: "c1", members: [agent({ heartbeat: "5s" })] }],
    ["a checkpoint at second 0 of every minute", { name: "c1", extra: '  checkpoint: {schedule: "0 * * * * *"}' }],
    ["a 7d grace and a 366d retention", { name: "c1", grace: "7d", retention: "366d" }],
    ["a 1m downedTimeout", { name: "c1", extra: "  downedTimeout: 1m" }],
    ["an empty argument after the program", { name: "c1", members: [agent({ command: ["node", ""] })] }],
  ])("accepts %s", (_what, opts) => {
    expect(diagsOf(cellYaml(opts as Parameters<typeof cellYaml>[0]))).toEqual([]);
  });
});

describe("programs looked up where members run", () => {
  const dir = configDir({});
  afterAll(() => cleanup(dir));
  mkdirSync(path.join(dir, "agents"));
  writeFileSync(path.join(dir, "agents", "ok.sh"), "#!/bin/sh\n");
  chmodSync(path.join(dir, "agents", "ok.sh"), 0o755);
  writeFileSync(path.join(dir, "agents", "plain.txt"), "not executable\n");

  it("warns (at plan and validate time) about a program that is not on the members' PATH or not in the config dir", async () => {
    const members = [
      { identity: "agent:a", command: ["node", "x.mjs"] },
      { identity: "agent:b", command: ["no-such-program-xyz", "--flag"] },
      { identity: "agent:c", command: ["./agents/ok.sh"] },
      { identity: "agent:d", command: ["./agents/missing.sh"] },
      { identity: "agent:e", command: ["./agents/plain.txt"] },
      { identity: "agent:f", command: ["/nonexistent/bin/agent"] },
      { identity: "agent:g", command: ["bin/agent"] }, // relative to the member's home: not judged here
    ];
    writeFileSync(path.join(dir, "cells.d", "a.yaml"), cellYaml({ name: "c1", members }));
    const { desired, diagnostics } = await loadConfig(dir);
    expect(desired.cells.has("c1")).toBe(true); // a warning, not an error
    const lines = diagnostics.map(formatDiagnostic);
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(
      /^cells\.d\/a\.yaml:14:17: warning: spec\.members\[1\]\.command: program "no-such-program-xyz" is not found on the members' PATH/,
    );
    expect(lines[1]).toMatch(
      /spec\.members\[3\]\.command: program "\.\/agents\/missing\.sh" is not found relative to the config dir/,
    );
    expect(lines[2]).toContain('program "./agents/plain.txt" is not found relative to the config dir');
    expect(lines[2]).toContain("or is not executable");
    expect(lines[3]).toContain('program "/nonexistent/bin/agent" is not found at that path');
  });
});
