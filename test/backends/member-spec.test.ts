// memberSpec: the one place a member's run spec is made from its record (a start, a session and
// verify's probe alike); what differs between them is said by the caller.
import path from "node:path";
import { describe, expect, it } from "vitest";
import { NO_CONFIG_DIR, memberSpec } from "../../src/backends/backend.js";
import { cellPaths } from "../../src/cells/layout.js";
import type { CellRecord, MemberRecord } from "../../src/cells/record.js";

const cp = cellPaths("/state/cells/c");
const member = (extra: Partial<MemberRecord> = {}): MemberRecord => ({
  identity: "agent:ezra",
  home: "ezra",
  role: "executor",
  env: { DECLARED: "1" },
  status: "running",
  restarts: 0,
  joinedAt: "2030-01-01T00:00:00.000Z",
  resources: { memoryBytes: 1 << 30 },
  ...extra,
});
const cell = (extra: Partial<CellRecord> = {}): CellRecord => ({ name: "c", ...extra }) as CellRecord;

describe("memberSpec", () => {
  it("gives every run the member's home, role, limits, credentials, portfolio and the cell's venv", () => {
    const m = member({ portfolioDigest: "p1" });
    const spec = memberSpec(cell({ python: { digest: "v1" } }), cp, m, {
      command: ["node", "/config/agent.mjs"],
      env: m.env,
      configDir: "/config",
      memberFilesInMeta: true,
    });
    expect(spec).toEqual({
      cell: "c",
      cellDir: "/state/cells/c",
      identity: "agent:ezra",
      home: "/state/cells/c/home/ezra",
      homeName: "ezra",
      role: "executor",
      command: ["node", "/config/agent.mjs"],
      env: { DECLARED: "1" },
      credentialsFile: cp.credentials,
      resources: { memoryBytes: 1 << 30 },
      configDir: "/config",
      portfolioFile: path.join(cp.meta, "members", "ezra", "portfolio.json"),
      venv: "/state/cells/c/.lazarus/venvs/v1",
    });
    // where the backend keeps member files in the home
    expect(
      memberSpec(cell(), cp, m, { command: [], env: {}, configDir: "/", memberFilesInMeta: undefined }),
    ).toMatchObject({
      portfolioFile: "/state/cells/c/home/ezra/.lazarus/portfolio.json",
    });
  });

  it("gives verify's probe the member's portfolio too, with its own command and env and no venv", () => {
    const spec = memberSpec(cell({ python: { digest: "v1" } }), cp, member({ portfolioDigest: "p1" }), {
      command: ["/bin/sh", "-c", "probe"],
      env: { LZ_TOKEN: "t" },
      configDir: NO_CONFIG_DIR,
      memberFilesInMeta: true,
      venv: false,
    });
    expect(spec.portfolioFile).toBe(path.join(cp.meta, "members", "ezra", "portfolio.json"));
    expect(spec).not.toHaveProperty("venv");
    expect(spec.env).toEqual({ LZ_TOKEN: "t" }); // never the member's declared env
    expect(spec.credentialsFile).toBe(cp.credentials);
  });

  it("leaves out what the member or the cell has not got", () => {
    const spec = memberSpec(cell(), cp, member({ resources: undefined }), {
      command: ["sh"],
      env: {},
      configDir: NO_CONFIG_DIR,
      memberFilesInMeta: true,
    });
    expect(spec).not.toHaveProperty("portfolioFile");
    expect(spec).not.toHaveProperty("venv");
    expect(spec.resources).toEqual({});
  });
});
