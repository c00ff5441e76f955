// Stopping members that ignore SIGTERM, and a cell whose credentials cannot be read.
import { existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { AGENT, cellYaml, cleanup, configDir, isAlive, lazarus, readRecord, tempDir, waitFor } from "../helpers.js";

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));

describe("stopping and failing safely", () => {
  it("kills a member that ignores SIGTERM after the stop timeout", async () => {
    const state = tempDir("lazarus-state-");
    const config = configDir({
      "cells.d/c.yaml": cellYaml({
        name: "stubborn",
        members: [
          { identity: "agent:mule", command: ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"] },
        ],
      }),
    });
    dirs.push(state, config);
    const args = ["--config", config, "--state-dir", state];
    expect((await lazarus(["apply", ...args])).exitCode).toBe(0);
    const m = readRecord(path.join(state, "cells", "stubborn")).members[0]!;
    await waitFor(() => isAlive(m.pid, m.startTime));
    await new Promise((r) => setTimeout(r, 200)); // let the shell install its trap
    const started = Date.now();
    const r = await lazarus([
      "apply",
      "--stop-timeout",
      "500",
      ...args,
      "--now",
      new Date(Date.now() + 5 * 3_600_000).toISOString(),
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain("ttl 4h expired");
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
    expect(isAlive(m.pid, m.startTime)).toBe(false);
  });

  it("holds only the cell whose credential file is missing, with its line and what to do, and applies the others", async () => {
    const state = tempDir("lazarus-state-");
    const secrets = tempDir("lazarus-secrets-");
    const config = configDir({
      "cells.d/a.yaml": cellYaml({ name: "needs-token", extra: "  credentials:\n    TOKEN: {file: missing-token}" }),
      "cells.d/b.yaml": cellYaml({ name: "fine", members: [{ identity: "agent:a", command: ["node", AGENT] }] }),
    });
    dirs.push(state, config, secrets);
    const r = await lazarus(["apply", "--config", config, "--state-dir", state, "--secrets-dir", secrets]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(
      /cells\.d\/a\.yaml:9:\d+: error: spec\.credentials\.TOKEN\.file: "missing-token" does not exist under the secrets root/,
    );
    expect(r.stderr).toContain("create the file there (the operator), or fix the name");
    expect(readRecord(path.join(state, "cells", "fine")).state).toBe("active");
    // Nothing of the held cell was built; it is created once the file exists.
    expect(existsSync(path.join(state, "cells", "needs-token"))).toBe(false);
    writeFileSync(path.join(secrets, "missing-token"), "t0k3n\n");
    expect(
      (await lazarus(["apply", "--config", config, "--state-dir", state, "--secrets-dir", secrets])).exitCode,
    ).toBe(0);
    expect(readRecord(path.join(state, "cells", "needs-token")).state).toBe("active");
  });
});
