// Where a cell's branch is pushed comes from the operator's forge row alone (gitUrl, or the forge's
// own git site), bounded by its pushBranches; a backend whose project/ is not on this host pushes
// nothing; git's failures are read as rejected, permanent or transient; the token goes into git's
// environment only.
import { afterEach, describe, expect, it } from "vitest";
import { cellYaml, cleanup, configDir, lazarus } from "../helpers.js";
import { gitBase, parseForges, pushTargetOf } from "../../src/forge/table.js";
import { authEnv, classify } from "../../src/forge/git-push.js";
import { pushOf } from "../../src/forge/pushes.js";

const TABLE = `forges:
  - match: "Gh/"
    kind: github
    url: https://api.github.com
    tokenFile: gh/token
  - match: "Ghe/"
    kind: github
    url: https://ghe.example.org/api/v3
    tokenFile: gh/token
  - match: "Org/"
    kind: gitea
    url: https://gitea.example.org
    gitUrl: https://git.example.org/mirror/
    tokenFile: gitea/token
    pushBranches: ["lazarus/*", "feature/*"]
  - match: "Plain/"
    kind: gitea
    url: https://gitea.example.org
    tokenFile: gitea/token
  - match: "Notoken/"
    kind: gitea
    url: https://gitea.example.org
`;

describe("the push target", () => {
  const forges = parseForges(TABLE, "forges.yaml");

  it("is the row's git site and the project's repository, never anything the cell says", () => {
    expect(gitBase(forges[0]!)).toBe("https://github.com");
    expect(gitBase(forges[1]!)).toBe("https://ghe.example.org");
    expect(pushTargetOf(forges, "Gh/repo#1", "x")).toMatchObject({
      pushes: true,
      url: "https://github.com/Gh/repo.git",
    });
    expect(pushTargetOf(forges, "Plain/repo#2", "main")).toMatchObject({
      pushes: true,
      url: "https://gitea.example.org/Plain/repo.git",
    });
    expect(pushTargetOf(forges, "Org/repo#2", "feature/login")).toMatchObject({
      pushes: true,
      url: "https://git.example.org/mirror/Org/repo.git",
    });
  });

  it("says why a cell is not pushed", () => {
    expect(pushTargetOf(forges, "Org/repo#2", "main")).toEqual({
      pushes: false,
      why: "not pushed: branch main is not in pushBranches of the forge (LAZARUS_FORGES line 10)",
    });
    expect(pushTargetOf(forges, "Else/repo#1", "x")).toEqual({ pushes: false, why: "not pushed: no forge matches" });
    expect(pushTargetOf(forges, "Notoken/repo#1", "x")).toMatchObject({ pushes: false });
    const rec = { project: "Plain/repo#1", push: { branch: "b" } };
    expect(pushOf({ ...rec, backend: "kubernetes" }, forges)?.target).toEqual({
      pushes: false,
      why: "not pushed: backend kubernetes keeps project/ off this host",
    });
    expect(pushOf({ ...rec, backend: "remote" }, forges)?.target.pushes).toBe(false);
    expect(pushOf({ ...rec, backend: "process" }, forges)?.target.pushes).toBe(true);
    expect(pushOf({ project: "Plain/repo#1", backend: "process" }, forges)).toBeUndefined();
  });

  it("refuses a bad gitUrl or pushBranches at its line", () => {
    expect(() =>
      parseForges(
        "forges:\n  - match: Org/\n    kind: gitea\n    url: https://g.example\n    gitUrl: ftp://x\n",
        "f.yaml",
      ),
    ).toThrow(/^LAZARUS_FORGES f\.yaml:2: forges\[0\]: gitUrl must be an http\(s\) URL/);
    expect(() =>
      parseForges(
        "forges:\n  - match: Org/\n    kind: gitea\n    url: https://g.example\n    pushBranches: main\n",
        "f.yaml",
      ),
    ).toThrow(/forges\[0\]: pushBranches must be a list/);
  });
});

describe("git's answers", () => {
  it("are transient for 5xx, 429 and the network, permanent for 401, 403, 404 and a refused login", () => {
    expect(classify("error: RPC failed; HTTP 500 curl 22 The requested URL returned error: 500")).toBe("transient");
    expect(classify("fatal: unable to access 'x': The requested URL returned error: 429")).toBe("transient");
    expect(classify("fatal: unable to access 'x': Failed to connect to 127.0.0.1 port 1: Connection refused")).toBe(
      "transient",
    );
    expect(classify("fatal: unable to access 'x': The requested URL returned error: 403")).toBe("permanent");
    expect(classify("fatal: could not read Username for 'http://x': terminal prompts disabled")).toBe("permanent");
    expect(classify("fatal: Authentication failed for 'http://x/'")).toBe("permanent");
    expect(classify("remote: Not found.\nfatal: repository 'http://x/' not found")).toBe("permanent");
  });

  it("the token travels in the environment as a basic-auth header, never in argv or a URL", () => {
    const env = authEnv("tok");
    expect(env).toEqual({
      GIT_CONFIG_COUNT: "1",
      GIT_CONFIG_KEY_0: "http.extraHeader",
      GIT_CONFIG_VALUE_0: `Authorization: Basic ${Buffer.from("x-access-token:tok").toString("base64")}`,
    });
  });
});

describe("spec.push in a cell file", () => {
  let dirs: string[] = [];
  afterEach(() => {
    cleanup(...dirs);
    dirs = [];
  });

  it("a branch that is not a plain branch name is an error at its line, saying what to use", async () => {
    const yaml = cellYaml({ name: "c", extra: '  push: {branch: "../main"}' });
    const config = configDir({ "cells.d/c.yaml": yaml });
    dirs.push(config);
    const r = await lazarus(["validate", "-c", config]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr + r.stdout).toContain(
      'cells.d/c.yaml:8:18: error: spec.push.branch: "../main" is not valid ' +
        "(use a git branch name such as feature/login",
    );
  });
});
