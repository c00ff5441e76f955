// The revision of a config dir: its commit when it is a git work tree (marked -dirty when
// cells.d/ or portfolios/ have uncommitted changes), else undefined. Plain child_process: `plan`
// runs these two commands and nothing else, so it need not load execa.
import { execFile } from "node:child_process";
import { existsSync, realpathSync } from "node:fs";
import path from "node:path";

function git(configDir: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      "git",
      ["-C", configDir, ...args],
      { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
      (err, stdout) => (err ? reject(err) : resolve(stdout)),
    );
    child.stdin?.end();
  });
}

// Whether git could find a work tree for dir: a .git (directory or file) in it or above it, or
// GIT_DIR / GIT_WORK_TREE set. When not, git is not run (a plan outside git spends nothing on it).
function maybeInGit(dir: string, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.GIT_DIR || env.GIT_WORK_TREE) return true;
  let real: string;
  try {
    real = realpathSync(dir); // git walks up the physical path, not through a symlink's parents
  } catch {
    return true; // let git say
  }
  for (let d = real; ; d = path.dirname(d)) {
    if (existsSync(path.join(d, ".git"))) return true;
    if (path.dirname(d) === d) return false;
  }
}

export async function gitRevision(configDir: string): Promise<string | undefined> {
  if (!maybeInGit(configDir)) return undefined;
  try {
    const head = (await git(configDir, ["rev-parse", "HEAD"])).trim();
    const dirty = (await git(configDir, ["status", "--porcelain", "--", "cells.d", "portfolios"])).trim();
    return dirty ? `${head}-dirty` : head;
  } catch {
    return undefined;
  }
}
