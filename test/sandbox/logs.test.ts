// Logs of sandboxed members: the pump runs outside the member's cgroup (as Lazarus's user), its
// lines reach `lazarus logs` stamped, and rotation bounds them as for the process backend.
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { cellYaml, configDir, lazarus, readRecord, waitFor } from "../helpers.js";
import { cgroupPids, sandboxSuite, skipReason } from "./helpers.js";

const holds = (file: string, text: string) => {
  try {
    return readFileSync(file, "utf8").includes(text);
  } catch {
    return false;
  }
};

describe.skipIf(skipReason)("sandbox member logs", () => {
  const { state, cfg, run, env } = sandboxSuite("sandbox/logs");

  it("stamps a sandboxed member's lines, bounds them, and keeps the pump out of the member's cgroup", async () => {
    const writer = [
      "sh",
      "-c",
      "echo hello-from-sandbox; echo to-stderr > /dev/stderr; i=0; while [ $i -lt 40 ]; do head -c 100000 /dev/zero | tr '\\0' x | fold -w 99; echo; i=$((i+1)); done; echo END-OF-BURST; exec sleep 600",
    ];
    configDir(
      {
        "cells.d/sbx.yaml": cellYaml({
          name: "sbx",
          extra: "  backend: sandbox\n  logs: {maxSize: 64Ki, keep: 1}",
          members: [{ identity: "agent:loud", command: writer }],
        }),
      },
      cfg,
    );
    const r = await run("apply", "--yes");
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const logs = path.join(state, "cells", "sbx", ".lazarus", "logs");
    await waitFor(() => holds(path.join(logs, "loud.log"), "END-OF-BURST"), 120_000);
    const files = readdirSync(logs)
      .filter((f) => f.startsWith("loud.log"))
      .sort();
    expect(files).toEqual(["loud.log", "loud.log.1"]);
    for (const f of files) expect(statSync(path.join(logs, f)).size).toBeLessThanOrEqual(64 * 1024);
    const shown = await lazarus(["logs", "sbx", "--tail", "1", "-s", state], { env });
    expect(shown.stdout).toBe("agent:loud | END-OF-BURST");
    // The pump is not one of the member's processes: the member's cgroup holds none of it.
    const rec = readRecord(path.join(state, "cells", "sbx"));
    const group = `${rec.sandbox?.cgroup}/loud`;
    const inGroup = cgroupPids(group).map((p) => readFileSync(`/proc/${p}/cmdline`, "utf8"));
    expect(inGroup.length).toBeGreaterThan(0);
    expect(inGroup.some((c) => c.includes("log-pump"))).toBe(false);
    expect(existsSync(path.join(logs, "loud.log"))).toBe(true);
  });
});
