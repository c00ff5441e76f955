// The operator's settings for this host: trusted input (flags and Lazarus's own environment),
// never taken from cells.d/. What a cell declaration may reach on the host is bounded by these.
import path from "node:path";
import { LazarusError } from "../util/errors.js";
import { parseMemory } from "../config/quantity.js";
import { settingProblems } from "./table.js";
import { formatBytes, hostLimits, type HostLimits } from "./limits.js";
import { forgeTable } from "../forge/table.js";

export interface HostSettings {
  // File credentials are read only from under this directory (--secrets-dir, LAZARUS_SECRETS_DIR).
  secretsDir?: string;
  // Env credentials only from host variables starting with one of these (LAZARUS_CREDENTIAL_ENV_PREFIX,
  // comma-separated; default LAZARUS_SECRET_).
  credentialEnvPrefixes: string[];
  sandbox: {
    uidRange: { first: number; last: number }; // per-cell uids (LAZARUS_UID_RANGE, default 200000-299999)
    roBinds: string[]; // extra read-only binds for every sandboxed member (LAZARUS_SANDBOX_BINDS, ":"-separated)
    cgroupRoot: string; // cgroup directory name under each hierarchy (LAZARUS_CGROUP_ROOT, default lazarus)
  };
  // Members' log rotation where a cell declares no spec.logs (LAZARUS_LOG_MAX_SIZE, default 10Mi;
  // LAZARUS_LOG_KEEP, default 3).
  // LAZARUS_LOG_PUMP=off: members write straight to their log, without times or rotation.
  logs: { maxBytes: number; keep: number; pump: boolean };
  // Ceilings on what cells may ask, and the limits of members that ask for none (limits.ts).
  limits: HostLimits;
  // Cells' disk quotas (sandbox, container): LAZARUS_DEFAULT_DISK, LAZARUS_MAX_DISK (see diskSettings).
  disk: DiskSettings;
  // The largest checkpoint: the default of a cell without spec.checkpoint.maxSize and the most one
  // may ask for (LAZARUS_CHECKPOINT_MAX_SIZE, default 10Gi).
  checkpoint: { maxBytes: number };
}

export interface HostFlags {
  secretsDir?: string;
  sandboxBind?: string[];
}

function parseRange(text: string): { first: number; last: number } {
  const m = /^(\d+)-(\d+)$/.exec(text.trim());
  const first = m ? Number(m[1]) : Number.NaN;
  const last = m ? Number(m[2]) : Number.NaN;
  if (!m || first < 1000 || last < first || last > 4_294_967_294) {
    throw new LazarusError(
      "BAD_SETTING",
      `LAZARUS_UID_RANGE "${text}" is not a range like 200000-299999 (first ≥ 1000, last ≥ first)`,
    );
  }
  return { first, last };
}

// The per-cell uids of sandbox and container cells (LAZARUS_UID_RANGE).
export function uidRange(env: NodeJS.ProcessEnv = process.env): { first: number; last: number } {
  return parseRange(env.LAZARUS_UID_RANGE ?? "200000-299999");
}

// How members start (LAZARUS_SPAWNER): "perl", the default (src/backends/spawner.pl, where the
// host's perl has its modules; else node after all), or "node" (node's spawn and the node log
// pump). LAZARUS_LOG_PUMP=node, from when the pump was chosen apart, means node too.
export function startSetting(env: NodeJS.ProcessEnv = process.env): "perl" | "node" {
  const problems = settingProblems({ LAZARUS_SPAWNER: env.LAZARUS_SPAWNER, LAZARUS_LOG_PUMP: env.LAZARUS_LOG_PUMP });
  if (problems.length)
    throw new LazarusError(
      "BAD_SETTING",
      `${problems.join("; ")}: fix the setting in Lazarus's environment (docs/configuration.md, host settings)`,
    );
  return env.LAZARUS_SPAWNER === "node" || env.LAZARUS_LOG_PUMP === "node" ? "node" : "perl";
}

// Settings from flags first, then Lazarus's environment, then defaults.
export function hostSettings(env: NodeJS.ProcessEnv = process.env, flags: HostFlags = {}): HostSettings {
  const problems = settingProblems(env, "bound");
  if (problems.length)
    throw new LazarusError(
      "BAD_SETTING",
      `${problems.join("; ")}: fix the setting in Lazarus's environment (docs/configuration.md, host settings)`,
    );
  startSetting(env); // a bad one fails here, before any member starts
  forgeTable(env); // the forge table (LAZARUS_FORGES): a bad row fails here, at its line
  const secretsDir = flags.secretsDir ?? (env.LAZARUS_SECRETS_DIR || undefined);
  const prefixes = (env.LAZARUS_CREDENTIAL_ENV_PREFIX ?? "LAZARUS_SECRET_")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const binds = [...(env.LAZARUS_SANDBOX_BINDS ?? "").split(":").filter(Boolean), ...(flags.sandboxBind ?? [])].map(
    (b) => path.resolve(b),
  );
  const cgroupRoot = env.LAZARUS_CGROUP_ROOT || "lazarus";
  if (!/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(cgroupRoot) || cgroupRoot.split("/").includes("..")) {
    throw new LazarusError(
      "BAD_SETTING",
      `LAZARUS_CGROUP_ROOT "${cgroupRoot}" must be a relative cgroup path such as lazarus`,
    );
  }
  const maxSize = env.LAZARUS_LOG_MAX_SIZE || "10Mi";
  const maxBytes = parseMemory(maxSize);
  if (maxBytes === undefined || maxBytes < 16 * 1024)
    throw new LazarusError(
      "BAD_SETTING",
      `LAZARUS_LOG_MAX_SIZE "${maxSize}" is not a size of at least 16Ki, such as 10Mi`,
    );
  const keepText = env.LAZARUS_LOG_KEEP || "3";
  const keep = /^\d{1,3}$/.test(keepText) ? Number(keepText) : Number.NaN;
  if (!(keep >= 0 && keep <= 100))
    throw new LazarusError(
      "BAD_SETTING",
      `LAZARUS_LOG_KEEP "${keepText}" is not a number of rotated files from 0 to 100`,
    );
  const limits = hostLimits(env);
  if (maxBytes > limits.maxLogBytes)
    throw new LazarusError(
      "BAD_SETTING",
      `LAZARUS_LOG_MAX_SIZE "${maxSize}" is above LAZARUS_MAX_LOG_SIZE (${formatBytes(limits.maxLogBytes)}): the default may not exceed the ceiling`,
    );
  if (keep > limits.maxLogKeep)
    throw new LazarusError(
      "BAD_SETTING",
      `LAZARUS_LOG_KEEP "${keepText}" is above LAZARUS_MAX_LOG_KEEP (${limits.maxLogKeep}): the default may not exceed the ceiling`,
    );
  return {
    limits,
    logs: { maxBytes, keep, pump: !/^(off|0|false|no)$/i.test(env.LAZARUS_LOG_PUMP ?? "") },
    checkpoint: { maxBytes: checkpointMaxBytes(env) },
    ...(secretsDir ? { secretsDir: path.resolve(secretsDir) } : {}),
    credentialEnvPrefixes: prefixes,
    sandbox: { uidRange: uidRange(env), roBinds: binds, cgroupRoot },
    disk: diskSettings(env),
  };
}

export interface DiskSettings {
  default?: number; // bytes of a cell that declares no spec.resources.disk; undefined: none
  max?: number; // the most a cell may declare; undefined: no ceiling
}

export const MIN_DISK = 16 * 1024 ** 2; // an ext4 image smaller than this has little room beside its journal

// LAZARUS_DEFAULT_DISK (default none: a cell without spec.resources.disk has no quota; e.g. 10Gi)
// and LAZARUS_MAX_DISK (default none: no ceiling), sizes such as 10Gi.
export function diskSettings(env: NodeJS.ProcessEnv = process.env): DiskSettings {
  const size = (name: string, text: string): number | undefined => {
    if (/^none$/i.test(text)) return undefined;
    const bytes = parseMemory(text);
    if (bytes === undefined || bytes < MIN_DISK)
      throw new LazarusError("BAD_SETTING", `${name} "${text}" is not a size of at least 16Mi, such as 10Gi, or none`);
    return bytes;
  };
  const def = size("LAZARUS_DEFAULT_DISK", env.LAZARUS_DEFAULT_DISK || "none");
  const max = size("LAZARUS_MAX_DISK", env.LAZARUS_MAX_DISK || "none");
  if (def !== undefined && max !== undefined && def > max)
    throw new LazarusError(
      "BAD_SETTING",
      `LAZARUS_DEFAULT_DISK (${env.LAZARUS_DEFAULT_DISK}) is larger than LAZARUS_MAX_DISK (${env.LAZARUS_MAX_DISK}); lower the default or raise the ceiling`,
    );
  return { ...(def !== undefined ? { default: def } : {}), ...(max !== undefined ? { max } : {}) };
}

export const MIN_CHECKPOINT_BYTES = 1024 * 1024;

// The host's checkpoint size bound (LAZARUS_CHECKPOINT_MAX_SIZE, default 10Gi, at least 1Mi).
export function checkpointMaxBytes(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.LAZARUS_CHECKPOINT_MAX_SIZE || "10Gi";
  const bytes = parseMemory(text);
  if (bytes === undefined || bytes < MIN_CHECKPOINT_BYTES)
    throw new LazarusError(
      "BAD_SETTING",
      `LAZARUS_CHECKPOINT_MAX_SIZE "${text}" is not a size of at least 1Mi, such as 10Gi`,
    );
  return bytes;
}
