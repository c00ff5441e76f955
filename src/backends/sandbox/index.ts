// Backend sandbox: each member in bubblewrap as the cell's own uid, in cgroups, on this host
// (Linux, Lazarus as root). Its live half is sandbox.ts.
import { hostname } from "node:os";
import type { Diagnostic } from "../../config/diagnostics.js";
import type { DesiredCell } from "../../config/types.js";
import type { At, BackendSpec } from "../contract.js";

// A sandbox cell on a host that cannot sandbox is an error (the cell is held, never half-built);
// so is a limit whose cgroup controller is missing. (The host's tools and cgroups are looked at,
// and their modules loaded, by the first sandbox cell only.)
async function hostChecks(cell: DesiredCell, at: At): Promise<Diagnostic[]> {
  const [{ missingFacilities }, { sandboxHost }] = await Promise.all([import("./cgroup.js"), import("./host.js")]);
  const out: Diagnostic[] = [];
  const host = sandboxHost();
  for (const problem of host.problems) {
    out.push({
      severity: "error",
      ...at(["spec", "backend"]),
      field: "spec.backend",
      message: `backend sandbox cannot run on this host: ${problem}`,
      hint: "fix the host as said, or use backend: process for trusted agents only",
    });
  }
  if (host.problems.length === 0) {
    const wanted = [cell.resources, ...cell.members.map((m) => m.resources)];
    const missing = new Set(wanted.flatMap((r) => missingFacilities(host.cgroups, r)));
    for (const m of missing)
      out.push({
        severity: "error",
        ...at(["spec", "resources"]),
        field: "spec.resources",
        message: `a declared limit cannot be enforced: ${m}`,
        hint: "mount that cgroup controller, or remove the limit",
      });
  }
  return out;
}

export const sandboxBackend: BackendSpec = {
  name: "sandbox",
  summary: "bubblewrap as the cell's own uid, in cgroups, on this host (Linux, Lazarus as root)",
  capabilities: {
    checkpoint: true,
    heartbeat: true,
    progress: true,
    python: {
      realPath: /^\/(usr|bin)\//,
      where: "the PATH under /usr or /bin",
      why: "sandboxed members see only those",
    },
    sessions: { shell: "system", readOnlyRoles: true },
    diskQuota: true,
    network: "proxy",
    localPids: true,
    projectHere: true,
    poll: false,
    hostPrograms: true,
    cellFields: ["network", "egress"],
    replacedBy: [],
  },
  invariants: ["I1", "I2", "I3", "I4", "I5", "I6"],
  hostChecks,
  describe: () => "sandbox",
  memberFilesInMeta: true,
  // Members of network host share the host's loopback; the others reach the gateway's bridge.
  gatewayReach: (cell) => (cell.network === "host" ? "host" : "namespace"),
  where: {
    cell: (rec) => ({ host: hostname(), uid: rec.sandbox?.uid ?? null, cgroup: rec.sandbox?.cgroup ?? null }),
    member: (rec, m) => (rec.sandbox ? { cgroup: `${rec.sandbox.cgroup}/${m.home}` } : undefined),
    text: (w) => [w.uid != null ? `uid ${w.uid}` : "", w.cgroup ? `cgroup ${w.cgroup}` : ""].filter(Boolean).join(", "),
  },
  verify: {
    probe: {
      label: "sandbox",
      engineEnv: [],
      operatorBinds: true,
      stop: {
        check: "stop kills the whole cgroup",
        detail: "close and scrub kill every process in the cell's cgroup and refuse to go on while one survives",
      },
    },
  },
  diskUsage: async (dir) => (await import("../disk/image.js")).diskUsage(dir),
  live: async () => {
    const { SandboxBackend } = await import("./sandbox.js");
    return (ctx) => new SandboxBackend(ctx.stateRoot, ctx.settings, ctx.onExit);
  },
};
