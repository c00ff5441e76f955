// The revision a plan names: the config's commit when it is in a git work tree (found through a
// symlinked path too, as git finds it), nothing when it is not (git is then not run at all).
import { execFileSync } from "node:child_process";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { gitRevision } from "../../src/gitops/revision.js";
import { cleanup, tempDir } from "../helpers.js";

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));
const git = (cwd: string, ...args: string[]): string =>
  execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.com", ...args], {
    cwd,
    encoding: "utf8",
  }).trim();

describe("gitRevision", () => {
  it("is undefined for a config outside any git work tree", async () => {
    const dir = tempDir();
    dirs.push(dir);
    mkdirSync(path.join(dir, "cells.d"));
    expect(await gitRevision(dir)).toBeUndefined();
    expect(await gitRevision(path.join(dir, "absent"))).toBeUndefined();
  });

  it("is the commit of a config in a repository, reached directly or through a symlink, -dirty when cells.d changed", async () => {
    const repo = tempDir();
    const elsewhere = tempDir();
    dirs.push(repo, elsewhere);
    const config = path.join(repo, "fleet");
    mkdirSync(path.join(config, "cells.d"), { recursive: true });
    writeFileSync(path.join(config, "cells.d", "a.yaml"), "# none\n");
    git(repo, "init", "-q");
    git(repo, "add", ".");
    git(repo, "commit", "-qm", "one");
    const head = git(repo, "rev-parse", "HEAD");
    expect(await gitRevision(config)).toBe(head);
    // The link's own parents hold no .git: only the physical path leads to the repository.
    const link = path.join(elsewhere, "link");
    symlinkSync(config, link);
    expect(await gitRevision(link)).toBe(head);
    writeFileSync(path.join(config, "cells.d", "a.yaml"), "# changed\n");
    expect(await gitRevision(link)).toBe(`${head}-dirty`);
  });
});
