// Where a remote cell's host is declared: inline in spec.remote, or by name in the operator's hosts
// file (LAZARUS_REMOTE_HOSTS: trusted input, outside cells.d), and what `validate` says about it.
import { accessSync, constants, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import type { Diagnostic } from "../../config/diagnostics.js";
import type { DesiredCell, RemoteSpec, RemoteTarget, SourcePos } from "../../config/types.js";
import { which } from "../../util/which.js";
import { errorMessage } from "../../util/errors.js";

export const DEFAULT_ROOT = "~/.lazarus/cells";
export const HOSTS_ENV = "LAZARUS_REMOTE_HOSTS";
export const INLINE_ENV = "LAZARUS_REMOTE_INLINE";

const HOST_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;
const USER_RE = /^[a-z_][a-z0-9_.-]{0,31}$/;
const ROOT_RE = /^(\/|~\/)[A-Za-z0-9._/+-]*$/;

export type Resolved = { target: RemoteTarget } | { problem: string; field: string; hint: string };

const INLINE = ["host", "user", "port", "identityFile", "knownHosts", "root"] as const;

// One entry of the hosts file, checked as strictly as spec.remote is by the schema.
function hostEntry(name: string, raw: unknown, file: string): Resolved {
  const bad = (what: string): Resolved => ({
    problem: `host ${name} in ${file}: ${what}`,
    field: "spec.remote.name",
    hint: `fix the entry in ${file} (see docs/backends.md)`,
  });
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) return bad("is not a mapping");
  const e = raw as Record<string, unknown>;
  for (const k of Object.keys(e)) if (!(INLINE as readonly string[]).includes(k)) return bad(`unknown field ${k}`);
  if (typeof e.host !== "string" || !HOST_RE.test(e.host)) return bad("host is missing or not a host name");
  if (e.user !== undefined && (typeof e.user !== "string" || !USER_RE.test(e.user)))
    return bad("user is not a user name");
  if (e.port !== undefined && (typeof e.port !== "number" || !Number.isInteger(e.port) || e.port < 1 || e.port > 65535))
    return bad("port is not a port number");
  const dir = path.dirname(file);
  const abs = (v: unknown): string | undefined =>
    typeof v === "string" && v.length > 0 ? path.resolve(dir, v) : undefined;
  const identityFile = abs(e.identityFile);
  const knownHosts = abs(e.knownHosts);
  if (!identityFile) return bad("identityFile is missing");
  if (!knownHosts) return bad("knownHosts is missing");
  const root = e.root === undefined ? DEFAULT_ROOT : e.root;
  if (typeof root !== "string" || !ROOT_RE.test(root)) return bad("root must be an absolute path or ~/path");
  return {
    target: {
      name,
      host: e.host,
      ...(typeof e.user === "string" ? { user: e.user } : {}),
      port: (e.port as number | undefined) ?? 22,
      identityFile,
      knownHosts,
      root,
    },
  };
}

// spec.remote → the connection, or why there is none.
export function resolveRemote(spec: RemoteSpec, env: NodeJS.ProcessEnv = process.env): Resolved {
  const inline = INLINE.filter((k) => spec[k] !== undefined);
  if (spec.name !== undefined) {
    if (inline.length)
      return {
        problem: `name cannot be given with ${inline.join(", ")}`,
        field: `spec.remote.${inline[0]}`,
        hint: "name a host of the hosts file, or declare the connection inline, not both",
      };
    const file = env[HOSTS_ENV];
    if (!file)
      return {
        problem: `host ${spec.name} is named but ${HOSTS_ENV} names no hosts file`,
        field: "spec.remote.name",
        hint: `set ${HOSTS_ENV}=/path/hosts.yaml on the Lazarus host (see docs/backends.md)`,
      };
    let doc: unknown;
    try {
      doc = parse(readFileSync(file, "utf8"));
    } catch (err) {
      return {
        problem: `cannot read the hosts file ${file}: ${errorMessage(err)}`,
        field: "spec.remote.name",
        hint: `fix ${HOSTS_ENV} or the file`,
      };
    }
    const hosts = doc && typeof doc === "object" ? (doc as { hosts?: unknown }).hosts : undefined;
    const entry = hosts && typeof hosts === "object" ? (hosts as Record<string, unknown>)[spec.name] : undefined;
    if (entry === undefined)
      return {
        problem: `host ${spec.name} is not in the hosts file ${file}`,
        field: "spec.remote.name",
        hint: `add it under hosts: in ${file}, or fix the name`,
      };
    return hostEntry(spec.name, entry, path.resolve(file));
  }
  for (const k of ["host", "identityFile", "knownHosts"] as const) {
    if (spec[k] === undefined)
      return {
        problem: `${k} is required (or name: a host of the hosts file)`,
        field: "spec.remote",
        hint: "add remote: {host: H, identityFile: /path/key, knownHosts: /path/known_hosts}",
      };
  }
  // An inline connection lets whoever writes cells.d/ make Lazarus log in with any key file it can
  // read, to any host: only where the operator says cells.d/ is trusted that far.
  if (env[INLINE_ENV] !== "allow") {
    return {
      problem: `an inline connection (host, identityFile, knownHosts in the cell) is refused unless the operator allows it: a cell file could otherwise make Lazarus log in with any key it can read, to any host`,
      field: "spec.remote.identityFile",
      hint: `name a host of the operator's hosts file instead (remote: {name: X}, the file ${HOSTS_ENV} names), or, where cells.d/ is as trusted as this host, start Lazarus with ${INLINE_ENV}=allow`,
    };
  }
  return {
    target: {
      host: spec.host as string,
      ...(spec.user ? { user: spec.user } : {}),
      port: spec.port ?? 22,
      identityFile: spec.identityFile as string,
      knownHosts: spec.knownHosts as string,
      root: spec.root ?? DEFAULT_ROOT,
    },
  };
}

function readable(file: string): string | undefined {
  try {
    if (!statSync(file).isFile()) return "is not a regular file";
    accessSync(file, constants.R_OK);
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ENOENT"
      ? "does not exist"
      : `cannot be read (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`;
  }
}

// The ssh client Lazarus runs (LAZARUS_SSH overrides the PATH lookup).
export function sshBinary(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.LAZARUS_SSH) return readable(env.LAZARUS_SSH) === undefined ? env.LAZARUS_SSH : undefined;
  return which("ssh", env.PATH);
}

// Resolve the cell's host (filling in cell.remote.target) and say what keeps it from running.
export function remoteDiagnostics(
  cell: DesiredCell,
  at: (p: (string | number)[]) => SourcePos,
  env: NodeJS.ProcessEnv = process.env,
): Diagnostic[] {
  if (!cell.remote) return [];
  const out: Diagnostic[] = [];
  const r = resolveRemote(cell.remote, env);
  const pos = (field: string): SourcePos => {
    const parts = field.split(".");
    try {
      return at(parts);
    } catch {
      return at(["spec", "remote"]);
    }
  };
  if ("problem" in r) {
    out.push({
      severity: "error",
      ...pos(r.field),
      field: r.field,
      message: `backend remote: ${r.problem}`,
      hint: r.hint,
    });
    return out;
  }
  cell.remote.target = r.target;
  if (!sshBinary(env))
    out.push({
      severity: "error",
      ...pos("spec.backend"),
      field: "spec.backend",
      message: "backend remote needs the OpenSSH client (ssh) and this host has none on PATH",
      hint: "install openssh-client",
    });
  const viaName = cell.remote.name !== undefined;
  for (const [k, what] of [
    ["identityFile", "identity file"],
    ["knownHosts", "known_hosts file"],
  ] as const) {
    const problem = readable(r.target[k]);
    if (problem) {
      const field = viaName ? "spec.remote.name" : `spec.remote.${k}`;
      out.push({
        severity: "error",
        ...pos(field),
        field,
        message: `the ${what} ${r.target[k]}${viaName ? ` (host ${cell.remote.name} of the hosts file)` : ""} ${problem}`,
        hint:
          k === "knownHosts"
            ? "write the host's public key there (ssh-keyscan, checked out of band); an unknown host key is never trusted"
            : "point it at the private key Lazarus logs in with",
      });
    }
  }
  return out;
}
