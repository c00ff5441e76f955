// The revision of a config dir: its commit when it is a git work tree (marked -dirty when
// cells.d/ or portfolios/ have uncommitted changes), else undefined.
import { execa } from "../util/exec.js";

export async function gitRevision(configDir: string): Promise<string | undefined> {
  try {
    const head = (await execa("git", ["-C", configDir, "rev-parse", "HEAD"], { stdin: "ignore" })).stdout.trim();
    const dirty = (await execa("git", ["-C", configDir, "status", "--porcelain", "--", "cells.d", "portfolios"], { stdin: "ignore" })).stdout.trim();
    return dirty ? `${head}-dirty` : head;
  } catch {
    return undefined;
  }
}
