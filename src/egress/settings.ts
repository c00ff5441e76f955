// The operator's egress bounds (trusted host settings, never from cells.d/):
//   LAZARUS_EGRESS_ALLOW  patterns cells may ask for (comma-separated; unset: any host name)
//   LAZARUS_EGRESS_CIDRS  addresses reachable although private or loopback (unset: none)
//   LAZARUS_EGRESS_HOSTS  a hosts(5) file the proxy resolves names from before DNS
import path from "node:path";
import { LazarusError } from "../util/errors.js";
import { parseBound, type BoundPattern } from "./allow.js";
import { parseCidrs } from "./addresses.js";

export interface EgressSettings {
  bound?: BoundPattern[];
  cidrs: { address: string; prefix: number }[];
  hostsFile?: string;
}

// The bounds from Lazarus's environment; a malformed one is a BAD_SETTING naming the variable.
export function egressSettings(env: NodeJS.ProcessEnv = process.env): EgressSettings {
  const bound = parseBound(env.LAZARUS_EGRESS_ALLOW);
  if (!bound.ok)
    throw new LazarusError(
      "BAD_SETTING",
      `LAZARUS_EGRESS_ALLOW: ${bound.error}; give comma-separated host names or wildcards, e.g. api.anthropic.com,*.github.com:443`,
    );
  const cidrs = parseCidrs(env.LAZARUS_EGRESS_CIDRS);
  if (!cidrs.ok)
    throw new LazarusError(
      "BAD_SETTING",
      `LAZARUS_EGRESS_CIDRS: ${cidrs.error}; give comma-separated ranges, e.g. 10.20.0.0/16,127.0.0.1/32`,
    );
  const hosts = env.LAZARUS_EGRESS_HOSTS?.trim();
  if (hosts !== undefined && hosts !== "" && !path.isAbsolute(hosts))
    throw new LazarusError(
      "BAD_SETTING",
      `LAZARUS_EGRESS_HOSTS "${hosts}" must be an absolute path to a hosts(5) file`,
    );
  return { ...(bound.value ? { bound: bound.value } : {}), cidrs: cidrs.value, ...(hosts ? { hostsFile: hosts } : {}) };
}
