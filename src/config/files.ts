// Which files of a config dir are desired state: *.yaml and *.yml directly in cells.d/ and
// portfolios/, dot-files excluded. cells.d/ must exist and be a readable directory; portfolios/ is
// optional, and when it cannot be listed the portfolios are held (a diagnostic, not a failure).
import type { Dirent } from "node:fs";
import { readdir } from "node:fs/promises";
import path from "node:path";
import type { Diagnostic } from "./diagnostics.js";
import { LazarusError, errorMessage, isErrno } from "../util/errors.js";

export type ConfigSub = "cells.d" | "portfolios";

// The files of one subdirectory, and (for portfolios/ only) why it could not be listed.
export interface Listing {
  files: string[];
  regular: Set<string>; // those of files the listing said are regular files (not links or others)
  problem?: Diagnostic;
}

// The kind of a path relative to the config dir, or undefined when it is not a config file.
export function configFileKind(rel: string): ConfigSub | undefined {
  const m = /^(cells\.d|portfolios)\/([^/]+)$/.exec(rel);
  if (!m || !/\.ya?ml$/.test(m[2] as string) || (m[2] as string).startsWith(".")) return undefined;
  return m[1] as ConfigSub;
}

// Why a subdirectory cannot be listed, in words, with what to do.
function listProblem(err: unknown, sub: ConfigSub): { problem: string; hint: string } {
  if (isErrno(err, "ENOTDIR"))
    return { problem: `${sub} is not a directory`, hint: `make ${sub}/ a directory holding the *.yaml files` };
  if (isErrno(err, "EACCES") || isErrno(err, "EPERM"))
    return {
      problem: `${sub}/ cannot be listed: permission denied`,
      hint: `make it readable and searchable by the user Lazarus runs as (uid ${process.getuid?.() ?? "?"})`,
    };
  if (isErrno(err, "ELOOP")) return { problem: `${sub} is a symbolic link loop`, hint: `make ${sub}/ a directory` };
  return { problem: `${sub}/ cannot be listed: ${errorMessage(err)}`, hint: "check the config dir" };
}

// The config files under one subdirectory, relative to the config dir and sorted.
export async function configFiles(configDir: string, sub: ConfigSub): Promise<Listing> {
  let entries: Dirent[];
  try {
    entries = await readdir(path.join(configDir, sub), { withFileTypes: true });
  } catch (err) {
    if (isErrno(err, "ENOENT")) {
      if (sub === "portfolios") return { files: [], regular: new Set() };
      throw new LazarusError(
        "CONFIG_NOT_FOUND",
        `no cells.d/ directory in ${path.resolve(configDir)}: point --config at the directory that holds cells.d/ and portfolios/`,
      );
    }
    const { problem, hint } = listProblem(err, sub);
    if (sub === "cells.d")
      throw new LazarusError(
        "CONFIG_UNREADABLE",
        `${problem} (in ${path.resolve(configDir)}); ${hint}; nothing was changed`,
      );
    return {
      files: [],
      regular: new Set(),
      problem: { severity: "error", file: sub, message: `${problem}; the portfolios are held as they are`, hint },
    };
  }
  const files: string[] = [];
  const regular = new Set<string>();
  for (const e of entries) {
    const rel = `${sub}/${e.name}`;
    if (configFileKind(rel) !== sub) continue;
    files.push(rel);
    if (e.isFile()) regular.add(rel);
  }
  return { files: files.sort(), regular };
}
