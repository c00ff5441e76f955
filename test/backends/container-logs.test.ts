// Logs of container members: the engine's attached output goes through the pump like any other
// member's (stamped, interleaved, both streams), in the session's own uid range.
import { existsSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cellYaml, configDir, lazarus, tempDir, waitFor, uidBand } from "../helpers.js";
import { IMAGE, cleanupContainers, skipReason } from "./container-helpers.js";

function ledgerUids(state: string): string[] {
  const file = path.join(state, "ledger.jsonl");
  if (!existsSync(file)) return [];
  return [...new Set([...readFileSync(file, "utf8").matchAll(/"uid":"([0-9a-f]{8,})"/g)].map((m) => m[1] as string))];
}

describe.skipIf(skipReason)("container member logs", () => {
  const env = { LAZARUS_UID_RANGE: uidBand("backends/container-logs").range };
  const state = tempDir("lazarus-ctr-logs-");
  const cfg = configDir({});
  afterAll(async () => {
    await cleanupContainers(state, ledgerUids(state));
    for (const d of [state, cfg]) rmSync(d, { recursive: true, force: true });
  });

  it("shows a container member's stdout and stderr, stamped", async () => {
    const cmd = ["sh", "-c", "echo out-line; echo err-line >&2; exec sleep 100000"];
    configDir(
      {
        "cells.d/ctr.yaml": cellYaml({
          name: "ctr",
          extra: `  backend: container\n  container:\n    image: ${IMAGE}`,
          members: [{ identity: "agent:boxed", command: cmd }],
        }),
      },
      cfg,
    );
    const r = await lazarus(["apply", "--yes", "-c", cfg, "-s", state], { env, timeoutMs: 300_000 });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const log = path.join(state, "cells", "ctr", ".lazarus", "logs", "boxed.log");
    await waitFor(() => existsSync(log) && readFileSync(log, "utf8").includes("err-line"), 120_000);
    const shown = await lazarus(["logs", "ctr", "boxed", "-t", "-s", state], { env });
    const lines = shown.stdout.split("\n").map((l) => l.split(" "));
    expect(lines.map((l) => l[1]).sort()).toEqual(["err-line", "out-line"]);
    for (const l of lines) expect(l[0]).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  });
});
