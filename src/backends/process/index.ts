// Backend process: members run as Lazarus's own user, on this host, with no isolation (trusted
// agents only). Its live half is ../process.ts.
import { hostname } from "node:os";
import type { BackendSpec } from "../contract.js";
import type { Check, Invariant } from "../../verify/types.js";
import { unenforcedLimits } from "../limits.js";

const notEnforced = (invariant: Invariant, check: string, why: string): Check => ({
  invariant,
  check,
  ok: false,
  detail: `not enforced by backend process: ${why}`,
});

// What the process backend does and does not guarantee, said plainly.
function checks(): Check[] {
  return [
    notEnforced(
      "I1",
      "filesystem containment",
      "members run as Lazarus's own user and can read and write whatever it can",
    ),
    notEnforced(
      "I1",
      "disk quota",
      "members write to the host's filesystem and can fill the one that holds the state dir (spec.resources.disk needs backend sandbox or container)",
    ),
    {
      invariant: "I2",
      check: "member environment from an allowlist",
      ok: true,
      detail: "host variables other than PATH, LANG, TZ, TERM, USER, LOGNAME, SHELL and LC_* never pass",
    },
    notEnforced("I2", "credential isolation", "other cells' credential manifests are readable by the same user"),
    notEnforced("I3", "process boundary", "members see and can signal every process of Lazarus's user"),
    notEnforced("I4", "network segmentation", "members use the host's network"),
    notEnforced(
      "I5",
      "no residue after scrub",
      "processes that leave the member's process group (setsid) survive close, and files outside the cell stay",
    ),
  ];
}

export const processBackend: BackendSpec = {
  name: "process",
  summary: "trusted local agents: plain processes of Lazarus's own user, no isolation",
  capabilities: {
    checkpoint: true,
    heartbeat: true,
    progress: true,
    python: { where: "the members' PATH" },
    sessions: { shell: "host", readOnlyRoles: false },
    diskQuota: false,
    network: false,
    localPids: true,
    projectHere: true,
    poll: false,
    hostPrograms: true,
    cellFields: [],
    replacedBy: [],
  },
  invariants: ["I6"],
  validate: unenforcedLimits,
  where: { cell: () => ({ host: hostname() }), text: () => "" },
  gatewayReach: () => "host", // members share the host's network

  verify: { checks },
  live: async () => {
    const { ProcessBackend } = await import("../process.js");
    return (ctx) => new ProcessBackend(ctx.hostEnv, ctx.onExit, ctx.stateRoot);
  },
};
