// Credential values come from the operator, never from whoever wrote cells.d/: files only from
// under the secrets root Lazarus was given, variables only with a prefix Lazarus was given.
import { createHmac } from "node:crypto";
import { realpath } from "node:fs/promises";
import path from "node:path";
import type { CredentialSource } from "../config/types.js";
import { canonicalJson } from "../config/digest.js";
import { MiB, readUntrusted } from "../util/safe-fs.js";
import type { HostSettings } from "./settings.js";

export const SECRET_MAX_BYTES = MiB;

// What reading credentials needs: the operator's settings and environment, and the key that
// digests values (absent: no digest is computed).
export interface CredentialContext {
  host: HostSettings;
  hostEnv: NodeJS.ProcessEnv;
  digestKey?: Buffer;
}

export type SourceResult =
  { ok: true; value: string } | { ok: false; field: "file" | "env"; message: string; hint: string };

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === "" ? false : !rel.startsWith("..") && !path.isAbsolute(rel);
}

export type SecretPath = { ok: true; path: string } | { ok: false; message: string; hint: string };

// A file a cell names that only the operator may provide (a file credential, a kubeconfig): a
// relative path under the secrets root, resolved through every link and still under it. what:
// how the messages name such files, e.g. "file credentials"; example: a relative name for the hint.
export async function secretPath(
  file: string,
  host: HostSettings,
  what = "file credentials",
  example = "gitea/token",
): Promise<SecretPath> {
  const bad = (message: string, hint: string): SecretPath => ({ ok: false, message, hint });
  if (!host.secretsDir)
    return bad(
      `${what} are read only from a secrets root, and none is set`,
      "start Lazarus with --secrets-dir DIR or LAZARUS_SECRETS_DIR=DIR, and name the file relative to it",
    );
  if (path.isAbsolute(file))
    return bad(
      `"${file}" is an absolute path; ${what} are read only from under the secrets root ${host.secretsDir}`,
      `name the file relative to the secrets root, e.g. ${example}`,
    );
  if (file.split(/[\\/]/).includes(".."))
    return bad(
      `"${file}" climbs out with ".."; ${what} are read only from under the secrets root ${host.secretsDir}`,
      "name a file under the secrets root, without ..",
    );
  let root: string;
  try {
    root = await realpath(host.secretsDir);
  } catch {
    return bad(
      `the secrets root ${host.secretsDir} does not exist`,
      "create it, or point --secrets-dir / LAZARUS_SECRETS_DIR at the right directory",
    );
  }
  let real: string;
  try {
    real = await realpath(path.join(root, file));
  } catch {
    return bad(
      `"${file}" does not exist under the secrets root ${host.secretsDir}`,
      "create the file there (the operator), or fix the name",
    );
  }
  if (!inside(root, real))
    return bad(
      `"${file}" leads outside the secrets root ${host.secretsDir} (through a symbolic link)`,
      "put the file itself under the secrets root",
    );
  return { ok: true, path: real };
}

// A file credential: a relative path under the secrets root, a regular file once every link is resolved.
async function fromFile(file: string, host: HostSettings): Promise<SourceResult> {
  const bad = (message: string, hint: string): SourceResult => ({ ok: false, field: "file", message, hint });
  const p = await secretPath(file, host, "file credentials", "{file: gitea/token}");
  if (!p.ok) return bad(p.message, p.hint);
  const real = p.path;
  const r = await readUntrusted(real, SECRET_MAX_BYTES);
  if (!r.ok) return bad(`"${file}" under the secrets root ${r.reason}`, "make it a regular file of at most 1 MiB");
  return { ok: true, value: r.text.replace(/\r?\n$/, "") };
}

// An env credential: a variable of Lazarus's environment whose name has an allowed prefix.
function fromEnv(name: string, host: HostSettings, hostEnv: NodeJS.ProcessEnv): SourceResult {
  const prefixes = host.credentialEnvPrefixes;
  if (!prefixes.some((p) => name.startsWith(p))) {
    return {
      ok: false,
      field: "env",
      message: `variable ${name} does not start with ${prefixes.join(" or ") || "(no prefix is allowed)"}; env credentials come only from variables the operator marked for cells`,
      hint: `use a variable named like ${prefixes[0] ?? "LAZARUS_SECRET_"}${name}, or ask the operator to allow the prefix (LAZARUS_CREDENTIAL_ENV_PREFIX)`,
    };
  }
  const v = hostEnv[name];
  if (v === undefined)
    return {
      ok: false,
      field: "env",
      message: `variable ${name} is not set in Lazarus's environment`,
      hint: "set it where Lazarus runs, or fix the name",
    };
  return { ok: true, value: v };
}

// One credential's value, or why it cannot be had.
export async function readSource(source: CredentialSource, ctx: CredentialContext): Promise<SourceResult> {
  return "file" in source ? fromFile(source.file, ctx.host) : fromEnv(source.env, ctx.host, ctx.hostEnv);
}

// A keyed digest of the values (HMAC-SHA256 under a key kept in the state dir), so a rotation is
// seen without storing a value, or anything a value could be guessed back from.
export function valuesDigest(key: Buffer, values: Record<string, string>): string {
  return createHmac("sha256", key).update(canonicalJson(values)).digest("hex").slice(0, 32);
}
