// The CELL_CREDENTIALS manifest: the cell's declared credentials, read from the operator's sources
// (the secrets root, prefixed variables; see host/secrets.ts) at apply time and written 0600 inside
// the cell. Values never reach the plan, the ledger or the logs; the record keeps only a keyed
// digest of them, so the next plan sees a rotation.
import path from "node:path";
import type { CellPaths } from "../cells/layout.js";
import type { CellRecord } from "../cells/record.js";
import type { CredentialSource } from "../config/types.js";
import { credentialDigestKey } from "../host/digest-key.js";
import { readSource, valuesDigest, type CredentialContext } from "../host/secrets.js";
import { hostSettings } from "../host/settings.js";
import { writeInPlace, writeTextAtomic } from "../util/fsx.js";
import { LazarusError } from "../util/errors.js";
import type { ApplyEnv } from "./context.js";

// The operator's sources and the digest key (created on first use) for an apply run.
// Read (or created) once per apply environment: one apply run, one daemon reconcile.
export function applyCredentialContext(env: Pick<ApplyEnv, "host" | "hostEnv" | "paths">): Promise<CredentialContext> {
  let ctx = contexts.get(env);
  if (!ctx) {
    ctx = (async () => {
      const digestKey = await credentialDigestKey(path.dirname(env.paths.ledger), true);
      return { host: env.host ?? hostSettings(env.hostEnv), hostEnv: env.hostEnv, ...(digestKey ? { digestKey } : {}) };
    })();
    contexts.set(env, ctx);
    ctx.catch(() => contexts.delete(env)); // a failure is not remembered
  }
  return ctx;
}

const contexts = new WeakMap<object, Promise<CredentialContext>>();

// Read every declared credential; fails, naming the credential and what to do, before anything is written.
export async function resolveCredentials(
  cell: string,
  credentials: Record<string, CredentialSource>,
  env: Pick<ApplyEnv, "host" | "hostEnv" | "paths">,
): Promise<Record<string, string>> {
  const ctx = await applyCredentialContext(env);
  const values = Object.create(null) as Record<string, string>; // a credential may be named __proto__
  for (const [name, source] of Object.entries(credentials)) {
    const r = await readSource(source, ctx);
    if (!r.ok)
      throw new LazarusError(
        "CREDENTIAL_REFUSED",
        `cell ${cell}: credential ${name}: ${r.message}; ${r.hint} (spec.credentials.${name}.${r.field})`,
      );
    values[name] = r.value;
  }
  return values;
}

// Write the cell's manifest and record the digest of what it holds. read: the values, already
// read from their sources (else they are read here); inPlace: the manifest is a new file in a
// cell's staging directory (no temp file; the caller makes it durable).
export async function writeCredentials(
  cp: CellPaths,
  rec: CellRecord,
  credentials: Record<string, CredentialSource>,
  env: Pick<ApplyEnv, "host" | "hostEnv" | "paths">,
  opts: { cell?: string; values?: Record<string, string>; inPlace?: boolean } = {},
): Promise<void> {
  const cell = opts.cell ?? path.basename(cp.dir);
  const values = opts.values ?? (await resolveCredentials(cell, credentials, env));
  // What the model gateway holds (rec.brokered) stays out: the key never enters the cell. The
  // digest still covers every value, so a rotated brokered key is seen as a rotation too.
  const given = Object.create(null) as Record<string, string>;
  for (const [k, v] of Object.entries(values)) if (!rec.brokered?.includes(k)) given[k] = v;
  const manifest = `${JSON.stringify({ formatVersion: 1, cell, credentials: given }, null, 2)}\n`;
  if (opts.inPlace) await writeInPlace(cp.credentials, manifest, 0o600);
  else await writeTextAtomic(cp.credentials, manifest, 0o600);
  const key = (await applyCredentialContext(env)).digestKey;
  if (key && Object.keys(values).length > 0) rec.credentialsValueDigest = valuesDigest(key, values);
  else delete rec.credentialsValueDigest;
}
