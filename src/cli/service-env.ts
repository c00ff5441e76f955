// The environment `lazarus service install` gives the daemon: every host setting of the table
// (src/host/table.ts) that is set where the command runs, in an EnvironmentFile= the unit names.
// Credential values (variables with a credential prefix) are never copied: they are listed so the
// operator moves them where they belong (files under the secrets dir).
import path from "node:path";
import { HOST_SETTINGS, settingProblems, type HostSettingSpec } from "../host/table.js";
import { LazarusError } from "../util/errors.js";

export const ENV_FILE_MARKER = "# Written by `lazarus service install`";

export interface ServiceEnvironment {
  vars: Record<string, string>; // name → value, as the daemon will see them
  notCarried: string[]; // names of credential variables left out
}

// A value as the unit must carry it: paths absolute (the unit's cwd is not the shell's).
function carried(spec: HostSettingSpec, value: string): string {
  if (value === "") return value;
  switch (spec.kind) {
    case "path":
      return path.resolve(value);
    case "paths":
      return value
        .split(":")
        .filter(Boolean)
        .map((p) => path.resolve(p))
        .join(":");
    case "program":
      return value.includes("/") ? path.resolve(value) : value;
    case "text":
      return value;
  }
}

// The credential prefixes in force (LAZARUS_CREDENTIAL_ENV_PREFIX, default LAZARUS_SECRET_).
function credentialPrefixes(env: NodeJS.ProcessEnv): string[] {
  return (env.LAZARUS_CREDENTIAL_ENV_PREFIX ?? "LAZARUS_SECRET_")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

// What the daemon's environment holds: the state and secrets dirs as resolved by the command,
// then every other host setting set in env. A bad setting or a line break: an error, nothing written.
export function serviceEnvironment(
  env: NodeJS.ProcessEnv,
  dirs: { stateDir: string; secretsDir?: string },
): ServiceEnvironment {
  const vars: Record<string, string> = {
    LAZARUS_STATE_DIR: dirs.stateDir,
    ...(dirs.secretsDir ? { LAZARUS_SECRETS_DIR: path.resolve(dirs.secretsDir) } : {}),
  };
  for (const spec of HOST_SETTINGS) {
    const value = env[spec.name];
    if (value === undefined || spec.name in vars || spec.name === "LAZARUS_SECRETS_DIR") continue;
    vars[spec.name] = carried(spec, value);
  }
  const problems = settingProblems(vars);
  for (const [k, v] of Object.entries(vars))
    if (/[\n\r\0]/.test(v)) problems.push(`${k} holds a line break, which systemd's EnvironmentFile= cannot carry`);
  if (problems.length)
    throw new LazarusError(
      "BAD_SETTING",
      `${problems.join("; ")}: fix the setting in this shell and run service install again (nothing was written)`,
    );
  const prefixes = credentialPrefixes(env);
  const notCarried = Object.keys(env)
    .filter((k) => env[k] !== undefined && prefixes.some((p) => k.startsWith(p)))
    .sort();
  return { vars, notCarried };
}

// One assignment in systemd's EnvironmentFile= syntax: double-quoted, where a backslash before
// one of " \ ` $ stands for that character (systemd.exec(5), EnvironmentFile=).
export function envFileLine(name: string, value: string): string {
  if (/[\n\r\0]/.test(value))
    throw new LazarusError("BAD_SETTING", `${name} holds a line break, which systemd's EnvironmentFile= cannot carry`);
  return `${name}="${value.replace(/["\\`$]/g, "\\$&")}"`;
}

// The environment file's text: a header, then one assignment a line.
export function renderEnvFile(unit: string, vars: Record<string, string>): string {
  const header = [
    `${ENV_FILE_MARKER} for ${unit}: the operator's host settings (docs/configuration.md).`,
    "# Regenerate it with `lazarus service install --force ...` from a shell that has the settings.",
    "# Credential values (LAZARUS_SECRET_* ...) are never written here: use files under the secrets dir.",
  ];
  return [...header, ...Object.entries(vars).map(([k, v]) => envFileLine(k, v)), ""].join("\n");
}

// What the dry-run and the install say about credential variables left out.
export function notCarriedNote(names: string[]): string | undefined {
  if (names.length === 0) return undefined;
  return `not carried into the service: ${names.join(", ")} (credential values never go into unit files; put each value in a file under the secrets dir and name it {file: NAME} in the cell, or give the service its own drop-in, e.g. systemctl edit, with an EnvironmentFile you keep at mode 0600)`;
}
