// The revision of a config dir: its commit when it is a git work tree (marked -dirty when
// cells.d/ or portfolios/ have uncommitted changes), else undefined. Plain child_process: `plan`
// runs these two commands and nothing else, so it need not load execa.
import { execFile } from "node:child_process";

function git(configDir: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile("git", ["-C", configDir, ...args], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
    child.stdin?.end();
  });
}

export async function gitRevision(configDir: string): Promise<string | undefined> {
  try {
    const head = (await git(configDir, ["rev-parse", "HEAD"])).trim();
    const dirty = (await git(configDir, ["status", "--porcelain", "--", "cells.d", "portfolios"])).trim();
    return dirty ? `${head}-dirty` : head;
  } catch {
    return undefined;
  }
}
