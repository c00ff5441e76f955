// Backend remote: members run on another host over SSH (the system OpenSSH, host key pinned), as
// the SSH user, in their own session and process group. Its live half is remote.ts.
import type { Diagnostic } from "../../config/diagnostics.js";
import type { DesiredCell } from "../../config/types.js";
import type { At, BackendSpec } from "../contract.js";
import type { Check, Invariant } from "../../verify/types.js";
import { unenforcedLimits } from "../limits.js";
import type { CellRecord } from "../../cells/record.js";
import { placeText, samePlace } from "./place.js";

function validate(cell: DesiredCell, at: At): Diagnostic[] {
  const out: Diagnostic[] = [];
  if (cell.python)
    out.push({
      severity: "error",
      ...at(["spec", "runtime", "python"]),
      field: "spec.runtime.python",
      message: "backend remote cannot build a Python venv on the remote host",
      hint: "install what members need on the remote host, or use backend: process or sandbox",
    });
  if (!cell.remote)
    out.push({
      severity: "error",
      ...at(["spec", "backend"]),
      field: "spec.remote",
      message: "backend remote needs spec.remote",
      hint: "add remote: {host: H, identityFile: /path/key, knownHosts: /path/known_hosts}, or remote: {name: X} naming a host of the hosts file (LAZARUS_REMOTE_HOSTS)",
    });
  return [...out, ...unenforcedLimits(cell, at)];
}

function stray(cell: DesiredCell, at: At): Diagnostic[] {
  if (!cell.remote) return [];
  return [
    {
      severity: "error",
      ...at(["spec", "remote"]),
      field: "spec.remote",
      message: `spec.remote is for backend remote (this cell's backend is ${cell.backend})`,
      hint: "set backend: remote, or remove spec.remote",
    },
  ];
}

// A live remote cell stays where it was made (its tree and members are there): another host, user,
// port or root in the declaration is refused, never silently ignored. Key files and a host's name
// in the hosts file follow the declaration (cells/fields.ts).
function unfollowed(d: DesiredCell, rec: CellRecord): { field: string; message: string; hint: string }[] {
  const t = d.remote?.target;
  const was = rec.remote;
  if (!t || !was || samePlace(was, t)) return [];
  return [
    {
      field: "spec.remote",
      message: `cell ${rec.name} lives on ${placeText(was)}; a live remote cell cannot move to ${placeText(t)}`,
      hint: "set state: closed first (its final checkpoint is kept here), or declare a cell with a new name; or restore the old host, user, port and root",
    },
  ];
}

// What the remote backend does and does not guarantee (its members are not probed).
function checks(): Check[] {
  const no = (invariant: Invariant, check: string, why: string): Check => ({
    invariant,
    check,
    ok: false,
    detail: `not enforced by backend remote: ${why}`,
  });
  return [
    no(
      "I1",
      "filesystem containment",
      "members run as the SSH user on their host and can read and write whatever it can",
    ),
    {
      invariant: "I2",
      check: "member environment from an allowlist",
      ok: true,
      detail: "members start with env -i and the allowlisted variables only",
    },
    no(
      "I2",
      "credential isolation",
      "other cells' credential manifests on that host are readable by the same SSH user",
    ),
    no("I3", "process boundary", "members see and can signal every process of the SSH user"),
    no("I4", "network segmentation", "members use the remote host's network"),
    no(
      "I5",
      "no residue after scrub",
      "processes that leave the member's process group survive close; files outside the cell's tree stay",
    ),
  ];
}

export const remoteBackend: BackendSpec = {
  name: "remote",
  summary: "another host over SSH (host key pinned), as the SSH user, no isolation there",
  capabilities: {
    checkpoint: true, // the tar is written there and kept here
    heartbeat: true,
    progress: false, // project/ is on the remote host
    python: false,
    sessions: false, // ssh to the host
    diskQuota: false,
    network: false,
    localPids: false, // another host's pids: polled over ssh
    projectHere: false, // project/ is on the remote host
    poll: true, // another host's processes: polled over ssh
    hostPrograms: false, // looked up on the remote host
    cellFields: ["remote"],
    replacedBy: [],
  },
  invariants: ["I6"],
  validate,
  stray,
  unfollowed,
  // The hosts file and ssh are looked at (hosts.ts loaded) by the first remote cell only.
  hostChecks: async (cell, at) => (await import("./hosts.js")).remoteDiagnostics(cell, at),
  describe: (d) => (d.remote?.target ? `remote ${d.remote.target.name ?? d.remote.target.host}` : undefined),
  where: { cell: (rec) => ({ host: rec.remote?.host ?? null }), text: () => "" },
  verify: { checks },
  live: async () => {
    const { RemoteBackend } = await import("./remote.js");
    return (ctx) => new RemoteBackend(ctx.stateRoot, ctx.hostEnv);
  },
  // ssh is loaded only when a remote cell is observed.
  observe: async (cells, ctx) => (await import("./observe.js")).observeRemote(ctx.stateRoot, cells),
};
