// The CELL_CREDENTIALS manifest: the cell's declared credentials, resolved on the host at apply
// time and written 0600 inside the cell. Values never reach the plan, the ledger or the logs.
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { CredentialSource } from "../config/types.js";
import { writeJsonAtomic } from "../util/fsx.js";
import { LazarusError, errorMessage } from "../util/errors.js";

// Read every declared credential on the host; fails, naming the credential and what to do, before
// anything is written.
export async function resolveCredentials(
  cell: string,
  credentials: Record<string, CredentialSource>,
  configDir: string,
  hostEnv: NodeJS.ProcessEnv,
): Promise<Record<string, string>> {
  const values: Record<string, string> = {};
  for (const [name, source] of Object.entries(credentials)) {
    if ("file" in source) {
      const p = path.resolve(configDir, source.file);
      try {
        values[name] = (await readFile(p, "utf8")).replace(/\r?\n$/, "");
      } catch (err) {
        throw new LazarusError("CREDENTIAL_UNREADABLE", `cell ${cell}: credential ${name}: cannot read ${p}: ${errorMessage(err)}; create the file or fix spec.credentials.${name}.file`);
      }
    } else {
      const v = hostEnv[source.env];
      if (v === undefined) {
        throw new LazarusError("CREDENTIAL_MISSING", `cell ${cell}: credential ${name}: variable ${source.env} is not set in Lazarus's environment; set it or fix spec.credentials.${name}.env`);
      }
      values[name] = v;
    }
  }
  return values;
}

export async function writeCredentials(
  file: string,
  cell: string,
  credentials: Record<string, CredentialSource>,
  configDir: string,
  hostEnv: NodeJS.ProcessEnv,
): Promise<void> {
  const values = await resolveCredentials(cell, credentials, configDir, hostEnv);
  await writeJsonAtomic(file, { formatVersion: 1, cell, credentials: values }, 0o600);
}
