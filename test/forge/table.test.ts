// The operator's forge table: which rows match which project, and a bad row is an error at its
// file:line that says what to do (and fails every command that reads cells, as other bad settings do).
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { forgeFor, parseForges, publicationOf, projectMatches } from "../../src/forge/table.js";
import { cellYaml, cleanup, configDir, lazarus, tempDir } from "../helpers.js";

const TABLE = `forges:
  - match: "Org/special"
    kind: github
    url: https://api.github.com
    tokenFile: github/token
  - match: "Org/"
    kind: gitea
    url: https://gitea.example.org/
    tokenFile: gitea/token
`;

let dirs: string[] = [];
afterEach(() => {
  cleanup(...dirs);
  dirs = [];
});

describe("the forge table", () => {
  it("matches an Org/ prefix, an exact Org/repo and * patterns; the first row that matches wins", () => {
    const forges = parseForges(TABLE, "forges.yaml");
    expect(forgeFor(forges, "Org/special#3")?.kind).toBe("github");
    expect(forgeFor(forges, "Org/specialist#3")?.kind).toBe("gitea");
    expect(forgeFor(forges, "Orgx/repo#3")).toBeUndefined();
    expect(forges[1]?.url).toBe("https://gitea.example.org");
    expect(forges[1]?.line).toBe(6);
    expect(projectMatches("Org/*", "Org/repo#1")).toBe(true);
    expect(projectMatches("*", "Any/thing#1")).toBe(true);
  });

  it("says when a cell publishes locally only, and why", () => {
    const forges = parseForges(TABLE, "forges.yaml");
    expect(publicationOf(forges, "Else/repo#1")).toEqual({ publishes: false, why: "local only: no forge matches" });
    expect(publicationOf(forges, "Org/repo").publishes).toBe(false);
    const p = publicationOf(forges, "Org/repo#12");
    expect(p.publishes && p.where).toBe("gitea https://gitea.example.org Org/repo#12");
  });

  it.each([
    ["  - match: Org/\n    kind: gitlab\n    url: https://x.example\n", 2, "kind must be one of gitea, github"],
    ["  - match: Org/\n    kind: gitea\n    url: ftp://x.example\n", 2, "url must be an http(s) URL"],
    ["  - match: Org/\n    kind: gitea\n    url: https://u:p@x.example\n", 2, "no credentials"],
    [
      "  - match: Org/\n    kind: gitea\n    url: https://x.example\n    tokenFile: /etc/shadow\n",
      2,
      "tokenFile must be a path relative",
    ],
    ["  - match: Org/\n    kind: gitea\n    url: https://x.example\n    tokenFile: ../x\n", 2, "without .."],
    ["  - {match: Org/, kind: gitea, url: 'https://x.example', token: abc}\n", 2, "unknown field token"],
    ["  - ok\n", 2, "forges[0] is not a mapping"],
  ])("a bad row is an error at its line: %#", (rows, line, what) => {
    expect(() => parseForges(`forges:\n${rows}`, "/ops/forges.yaml")).toThrow(
      new RegExp(`LAZARUS_FORGES /ops/forges.yaml:${line}: .*${what.replace(/[.()[\]]/g, "\\$&")}`),
    );
  });

  it("a broken table fails plan with the file and line, and loses nothing", async () => {
    const config = configDir({ "cells.d/c.yaml": cellYaml({ name: "c" }) });
    const state = tempDir("lazarus-state-");
    dirs.push(config, state);
    const table = path.join(config, "forges.yaml");
    writeFileSync(table, "forges:\n  - match: Org/\n    kind: gitea\n    url: nope\n");
    const r = await lazarus(["plan", "-c", config, "-s", state], { env: { LAZARUS_FORGES: table } });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`LAZARUS_FORGES ${table}:2: forges[0]: url must be an http(s) URL`);
  });
});
