// Which files of a config dir are desired state: *.yaml and *.yml directly in cells.d/ and
// portfolios/, dot-files excluded. cells.d/ must exist; portfolios/ is optional.
import { readdir } from "node:fs/promises";
import path from "node:path";
import { LazarusError, isErrno } from "../util/errors.js";

export type ConfigSub = "cells.d" | "portfolios";

// The kind of a path relative to the config dir, or undefined when it is not a config file.
export function configFileKind(rel: string): ConfigSub | undefined {
  const m = /^(cells\.d|portfolios)\/([^/]+)$/.exec(rel);
  if (!m || !/\.ya?ml$/.test(m[2] as string) || (m[2] as string).startsWith(".")) return undefined;
  return m[1] as ConfigSub;
}

// The config files under one subdirectory, relative to the config dir and sorted.
export async function configFiles(configDir: string, sub: ConfigSub): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(path.join(configDir, sub));
  } catch (err) {
    if (!isErrno(err, "ENOENT")) throw err;
    if (sub === "portfolios") return [];
    throw new LazarusError("CONFIG_NOT_FOUND", `no cells.d/ directory in ${path.resolve(configDir)}: point --config at the directory that holds cells.d/ and portfolios/`);
  }
  return entries.map((f) => `${sub}/${f}`).filter((rel) => configFileKind(rel) === sub).sort();
}
