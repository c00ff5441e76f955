// Every operator host setting, in one table: its name, what it decides, its default, and how a
// value is checked. `lazarus service install` carries the ones that are set into the unit's
// environment file, docs/configuration.md lists them (test/docs.test.ts compares), and
// hostSettings() parses the ones that bound what a cell file may ask. A variable that is not in
// this table is not the operator's to set: see INTERNAL_VARIABLES.
import { schemaBackends } from "../config/schema.js";
import { parseMemory } from "../config/quantity.js";
import { parseBound } from "../egress/allow.js";
import { parseCidrs } from "../egress/addresses.js";
import { providerToolsProblem } from "../gateway/provider-tools.js";

// How `service install` carries a value: paths are made absolute (the unit's working directory
// is not the shell's); the rest as written.
export type SettingKind = "text" | "path" | "paths" | "program";

export interface HostSettingSpec {
  name: string;
  flag?: string; // the command-line flag that sets it too
  default: string; // in words, as docs/configuration.md shows it
  what: string;
  kind: SettingKind;
  // Bounds what cells may ask: a bad value fails every command that reads cells (BAD_SETTING),
  // never silently read as the default.
  bound: boolean;
  check?: (value: string) => string | undefined; // why the value is wrong, with an example
}

// Range and format checks only; how the ceilings and defaults relate is checked by hostLimits().
const oneOf =
  (...values: string[]) =>
  (v: string): string | undefined =>
    values.includes(v) ? undefined : `is not one of ${values.join(", ")}`;

// A memory quantity of at least min bytes (e.g. 10Mi, 2Gi).
export const sizeCheck =
  (min: string, example: string) =>
  (v: string): string | undefined => {
    const bytes = parseMemory(v);
    return bytes !== undefined && bytes >= (parseMemory(min) as number)
      ? undefined
      : `is not a size of at least ${min}, such as ${example}`;
  };

// A whole number from min to max.
export const countCheck =
  (min: number, max: number) =>
  (v: string): string | undefined =>
    /^\d{1,10}$/.test(v) && Number(v) >= min && Number(v) <= max
      ? undefined
      : `is not a whole number from ${min} to ${max}`;

function egressAllowCheck(v: string): string | undefined {
  const r = parseBound(v);
  return r.ok ? undefined : `is not a list of host patterns (${r.error}), such as api.anthropic.com,*.github.com:443`;
}

function egressCidrsCheck(v: string): string | undefined {
  const r = parseCidrs(v);
  return r.ok ? undefined : `is not a list of address ranges (${r.error}), such as 10.20.0.0/16,127.0.0.1/32`;
}

// A disk quota (at least 16Mi, such as 10Gi) or none.
function diskCheck(v: string): string | undefined {
  return /^none$/i.test(v)
    ? undefined
    : sizeCheck("16Mi", "10Gi")(v) && "is not a size of at least 16Mi, such as 10Gi, or none";
}

function backendsCheck(v: string): string | undefined {
  const names = v.split(",").map((b) => b.trim());
  const known = schemaBackends();
  const bad = names.filter((b) => !known.includes(b));
  return bad.length ? `names ${bad.map((b) => `"${b}"`).join(", ")}, not a backend (${known.join(", ")})` : undefined;
}

function uidRangeCheck(v: string): string | undefined {
  const m = /^(\d+)-(\d+)$/.exec(v.trim());
  const first = m ? Number(m[1]) : Number.NaN;
  const last = m ? Number(m[2]) : Number.NaN;
  return m && first >= 1000 && last >= first && last <= 4_294_967_294
    ? undefined
    : "is not a range like 200000-299999 (first ≥ 1000, last ≥ first)";
}

function cgroupRootCheck(v: string): string | undefined {
  return /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(v) && !v.split("/").includes("..")
    ? undefined
    : "must be a relative cgroup path such as lazarus";
}

function prefixCheck(v: string): string | undefined {
  const bad = v
    .split(",")
    .map((s) => s.trim())
    .filter((p) => p !== "" && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(p));
  return bad.length
    ? `holds ${bad.map((b) => `"${b}"`).join(", ")}, not the start of a variable name (e.g. LAZARUS_SECRET_,OPS_)`
    : undefined;
}

const nonEmpty = (v: string): string | undefined => (v === "" ? "is empty" : undefined);
const flagValue = oneOf("0", "1", "true", "false");

export const HOST_SETTINGS: readonly HostSettingSpec[] = [
  {
    name: "LAZARUS_STATE_DIR",
    flag: "--state-dir",
    default: "/tmp/lazarus-cells etc.",
    what: "where cells, ledger, lock and archive live",
    kind: "path",
    bound: false,
    check: nonEmpty,
  },
  {
    name: "LAZARUS_SECRETS_DIR",
    flag: "--secrets-dir",
    default: "none: file credentials refused",
    what: "the only directory file credentials and kubeconfigs are read from",
    kind: "path",
    bound: false,
    check: nonEmpty,
  },
  {
    name: "LAZARUS_CREDENTIAL_ENV_PREFIX",
    default: "LAZARUS_SECRET_",
    what: "prefixes (comma list) of the variables {env: VAR} credentials may name",
    kind: "text",
    bound: true,
    check: prefixCheck,
  },
  {
    name: "LAZARUS_BACKENDS",
    default: "every backend",
    what: "backends cells may use (comma list)",
    kind: "text",
    bound: true,
    check: (v) => (v.trim() === "" ? undefined : backendsCheck(v)),
  },
  {
    name: "LAZARUS_HOST_NETWORK",
    default: "allow",
    what: "deny: network: host is an error at spec.network",
    kind: "text",
    bound: true,
    check: oneOf("allow", "deny"),
  },
  {
    name: "LAZARUS_REMOTE_HOSTS",
    default: "none",
    what: "the hosts file remote cells name hosts of",
    kind: "path",
    bound: false,
    check: nonEmpty,
  },
  {
    name: "LAZARUS_REMOTE_INLINE",
    default: "refused",
    what: "allow: a cell may declare its SSH host, key and known_hosts inline",
    kind: "text",
    bound: true,
    check: oneOf("allow", "deny"),
  },
  {
    name: "LAZARUS_SSH",
    default: "ssh on PATH",
    what: "the OpenSSH client the remote backend runs",
    kind: "program",
    bound: false,
    check: nonEmpty,
  },
  {
    name: "LAZARUS_UID_RANGE",
    default: "200000-299999",
    what: "the uids sandbox and container cells get, one per cell",
    kind: "text",
    bound: true,
    check: uidRangeCheck,
  },
  {
    name: "LAZARUS_CGROUP_ROOT",
    default: "lazarus",
    what: "the cgroup directory sandbox cells' cgroups go in",
    kind: "text",
    bound: true,
    check: cgroupRootCheck,
  },
  {
    name: "LAZARUS_CGROUP_MODE",
    default: "detected",
    what: "v1 or v2: which cgroup hierarchy the sandbox backend uses",
    kind: "text",
    bound: false,
    check: oneOf("v1", "v2"),
  },
  {
    name: "LAZARUS_SANDBOX_BINDS",
    default: "none",
    what: "host paths (:-separated) bound read-only into every sandbox",
    kind: "paths",
    bound: false,
  },
  {
    name: "LAZARUS_CONTAINER_ENGINE",
    default: "podman, else docker",
    what: "the container backend's engine",
    kind: "text",
    bound: false,
    check: oneOf("podman", "docker"),
  },
  {
    name: "LAZARUS_PYTHON",
    default: "python3 on PATH",
    what: "the interpreter spec.runtime.python venvs are made with",
    kind: "program",
    bound: false,
    check: nonEmpty,
  },
  {
    name: "LAZARUS_LOG_MAX_SIZE",
    default: "10Mi",
    what: "a member log's size before rotation, when its cell has no spec.logs",
    kind: "text",
    bound: true,
    check: sizeCheck("16Ki", "10Mi"),
  },
  {
    name: "LAZARUS_LOG_KEEP",
    default: "3",
    what: "rotated log files kept, when its cell has no spec.logs",
    kind: "text",
    bound: true,
    check: countCheck(0, 100),
  },
  {
    name: "LAZARUS_LOG_PUMP",
    default: "on",
    what: "off: members write straight to their logs (no times, no rotation); node: as LAZARUS_SPAWNER=node",
    kind: "text",
    bound: false,
    check: oneOf("on", "off", "0", "false", "no", "node", "perl"),
  },
  {
    name: "LAZARUS_SPAWNER",
    default: "perl (src/backends/spawner.pl) where perl has its modules, else node",
    what: "node: members start by node's own spawn, with the node log pump",
    kind: "text",
    bound: false,
    check: oneOf("node", "perl"),
  },
  {
    name: "LAZARUS_MAX_MEMORY",
    default: "half the host's memory",
    what: "the most memory one member may ask for (spec.resources.memory)",
    kind: "text",
    bound: true,
    check: sizeCheck("16Mi", "8Gi"),
  },
  {
    name: "LAZARUS_DEFAULT_MEMORY",
    default: "2Gi (at most LAZARUS_MAX_MEMORY)",
    what: "the memory limit of a member whose cell asks for none",
    kind: "text",
    bound: true,
    check: sizeCheck("16Mi", "2Gi"),
  },
  {
    name: "LAZARUS_MAX_PIDS",
    default: "8192",
    what: "the most processes one member may ask for (spec.resources.pids)",
    kind: "text",
    bound: true,
    check: countCheck(8, 4_194_304),
  },
  {
    name: "LAZARUS_DEFAULT_PIDS",
    default: "1024",
    what: "the process limit of a member whose cell asks for none",
    kind: "text",
    bound: true,
    check: countCheck(8, 4_194_304),
  },
  {
    name: "LAZARUS_MAX_CPU",
    default: "the host's CPUs (at least 2)",
    what: "the most cores one member may ask for (spec.resources.cpu)",
    kind: "text",
    bound: true,
    check: (v) =>
      /^(\d+(\.\d+)?|\d+m)$/.test(v) && Number.parseFloat(v) > 0
        ? undefined
        : "is not a number of cores such as 2, 1.5 or 500m",
  },
  {
    name: "LAZARUS_MAX_LOG_SIZE",
    default: "256Mi",
    what: "the largest spec.logs.maxSize a cell may ask for",
    kind: "text",
    bound: true,
    check: sizeCheck("16Ki", "256Mi"),
  },
  {
    name: "LAZARUS_MAX_LOG_KEEP",
    default: "10",
    what: "the largest spec.logs.keep a cell may ask for",
    kind: "text",
    bound: true,
    check: countCheck(0, 100),
  },
  {
    name: "LAZARUS_CHECKPOINT_MAX_SIZE",
    default: "10Gi",
    what: "the checkpoint size bound of a cell without spec.checkpoint.maxSize, and the most one may ask for",
    kind: "text",
    bound: true,
    check: sizeCheck("1Mi", "10Gi"),
  },
  {
    name: "LAZARUS_EGRESS_ALLOW",
    default: "any host name",
    what: "the entries network: {egress: [...]} may hold (comma list of names and *.domain wildcards)",
    kind: "text",
    bound: true,
    check: egressAllowCheck,
  },
  {
    name: "LAZARUS_EGRESS_CIDRS",
    default: "none",
    what: "addresses the egress proxy may reach although private or loopback (comma list of CIDRs)",
    kind: "text",
    bound: true,
    check: egressCidrsCheck,
  },
  {
    name: "LAZARUS_EGRESS_HOSTS",
    default: "none",
    what: "a hosts(5) file the egress proxy resolves names from before DNS",
    kind: "path",
    bound: true,
  },
  {
    name: "LAZARUS_PROVIDERS",
    default: "the well-known providers only",
    what: "a YAML file naming where each model provider lives",
    kind: "path",
    bound: true,
  },
  {
    name: "LAZARUS_FORGES",
    default: "none",
    what: "a YAML file naming the forge of each project prefix",
    kind: "path",
    bound: true,
  },
  {
    name: "LAZARUS_DEFAULT_DISK",
    default: "none",
    what: "the disk quota of a sandbox or container cell that declares no spec.resources.disk",
    kind: "text",
    bound: true,
    check: diskCheck,
  },
  {
    name: "LAZARUS_MAX_DISK",
    default: "none",
    what: "the largest spec.resources.disk a cell may ask for",
    kind: "text",
    bound: true,
    check: diskCheck,
  },
  {
    name: "LAZARUS_MAX_CELLS",
    default: "1000",
    what: "the most cells one state dir holds; plan holds new cells beyond it",
    kind: "text",
    bound: true,
    check: countCheck(1, 1_000_000),
  },
  {
    name: "LAZARUS_MAX_BUDGET_TOKENS",
    default: "none",
    what: "the most tokens a cell may spend through the model gateway in a day (spec.budget; a cell without one gets it)",
    kind: "text",
    bound: true,
    check: (v) => (/^none$/i.test(v) ? undefined : countCheck(1, 9_999_999_999)(v)),
  },
  {
    name: "LAZARUS_MAX_BUDGET_COST",
    default: "none",
    what: "the most cost a cell may spend through the model gateway in a day (spec.budget; a cell without one gets it)",
    kind: "text",
    bound: true,
    check: (v) =>
      /^none$/i.test(v) || (/^\d+(\.\d+)?$/.test(v) && Number(v) > 0)
        ? undefined
        : "is not a positive number such as 50, or none",
  },
  {
    name: "LAZARUS_GATEWAY",
    default: "on",
    what: "off: members get their provider credentials in CELL_CREDENTIALS instead of through the model gateway",
    kind: "text",
    bound: true,
    check: oneOf("on", "off"),
  },
  {
    name: "LAZARUS_GATEWAY_PROVIDER_TOOLS",
    default: "none",
    what: "the provider-side tools that reach the network (web_search, web_fetch, mcp) every cell may ask for",
    kind: "text",
    bound: true,
    check: providerToolsProblem,
  },
  {
    name: "LAZARUS_MAX_FILE_SIZE",
    flag: "--max-file-size",
    default: "1Mi",
    what: "the largest cells.d/ or portfolios/ file read",
    kind: "text",
    bound: false,
    check: sizeCheck("1", "1Mi"),
  },
  {
    name: "LAZARUS_NO_PROGRESS",
    flag: "--no-progress",
    default: "progress on a terminal",
    what: "no progress line for apply, sync, checkpoint",
    kind: "text",
    bound: false,
    check: flagValue,
  },
  {
    name: "LAZARUS_DEBUG",
    flag: "--debug",
    default: "off",
    what: "print the stack of an internal error",
    kind: "text",
    bound: false,
    check: flagValue,
  },
];

// LAZARUS_ variables that are not host settings: Lazarus sets them for a member, a session or its
// own helpers (so an operator's value would be overwritten or meaningless), or tests set them.
export const INTERNAL_VARIABLES: Readonly<Record<string, string>> = {
  LAZARUS_SPAWN_ID: "set for each member: finds it again after a crash",
  LAZARUS_EXIT_FILE: "set for each member's supervisor: where its exit code goes",
  LAZARUS_PORTFOLIO: "set for each member: its resolved model portfolio",
  LAZARUS_SESSION: "set for a session (lazarus shell / run)",
  LAZARUS_SESSION_CELL: "set for a session of the process backend",
  LAZARUS_STAGE: "set for the sandbox's mount helper",
  LAZARUS_OOM_FILE: "set for the sandbox's supervisor",
  LAZARUS_CGROUP_PROCS: "set for the sandbox's supervisor",
  LAZARUS_CONTAINER: "set for the container backend's supervisor",
  LAZARUS_EGRESS_PROXY: "set for the egress proxy: the state dir it serves",
  LAZARUS_MODEL_GATEWAY: "set for the model gateway: the state dir it serves",
  LAZARUS_FAILPOINT: "crash tests only",
  LAZARUS_PAUSEPOINT: "timing tests only",
};

// Host settings by name.
export function settingSpec(name: string): HostSettingSpec | undefined {
  return HOST_SETTINGS.find((s) => s.name === name);
}

// Why one setting's value is wrong, as a sentence, or undefined when it is fine.
export function settingProblem(spec: HostSettingSpec, value: string): string | undefined {
  const why = value === "" ? undefined : spec.check?.(value); // empty: as if unset
  return why === undefined
    ? undefined
    : `${spec.name} ${JSON.stringify(value)} ${why}${spec.flag ? ` (also set by ${spec.flag})` : ""}`;
}

// Every problem of the host settings set in env (only: "bound" for the ones that bound cells).
export function settingProblems(env: NodeJS.ProcessEnv, only?: "bound"): string[] {
  const out: string[] = [];
  for (const spec of HOST_SETTINGS) {
    const v = env[spec.name];
    if (v === undefined || (only === "bound" && !spec.bound)) continue;
    const p = settingProblem(spec, v);
    if (p) out.push(p);
  }
  return out;
}
