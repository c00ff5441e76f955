// Backend dry: members are recorded but never run. For tests and for trying a configuration:
// plan, apply, close, resurrect and scrub do all their bookkeeping (records, ledger, journal,
// checkpoints of the cell's tree) with no process, engine or host behind the members; a started
// member is a marker file of Lazarus's own (dry.ts). It is also the smallest backend: what
// docs/backends.md ("Writing a backend") shows a new one needs.
import type { BackendSpec } from "../contract.js";

export const dryBackend: BackendSpec = {
  name: "dry",
  summary: "nothing runs: members are recorded as started and stopped, for tests and trial runs",
  capabilities: {
    checkpoint: true, // the cell's tree is a local directory like any other
    heartbeat: false, // nothing runs to touch a heartbeat
    progress: true, // the cell's tree is local: a commit made in project/ is seen
    python: false,
    sessions: false,
    diskQuota: false,
    network: false,
    localPids: false,
    projectHere: false,
    poll: false,
    hostPrograms: false, // no program is ever run
    cellFields: [],
    replacedBy: [],
  },
  invariants: ["I6"], // nothing runs to contain; the ledger still records every change
  validate: (cell, at) =>
    cell.members.flatMap((m, i) =>
      m.heartbeatMs === undefined
        ? []
        : [
            {
              severity: "error" as const,
              ...at(["spec", "members", i, "heartbeat"]),
              field: `spec.members[${i}].heartbeat`,
              message: "backend dry runs nothing, so no heartbeat ever comes",
              hint: "remove heartbeat, or use a backend that runs members",
            },
          ],
    ),
  describe: () => "dry: nothing runs",
  where: { cell: () => ({}), text: () => "nothing runs" },
  verify: {
    checks: () => [
      {
        invariant: "I1",
        check: "nothing runs",
        ok: true,
        detail: "backend dry starts no process: its members are only recorded",
      },
    ],
  },
  live: async () => {
    const { DryBackend } = await import("./dry.js");
    return (ctx) => new DryBackend(ctx.stateRoot);
  },
  // A member lives while its marker is there; it never exits by itself.
  observe: async (cells, ctx) => {
    const { DryBackend } = await import("./dry.js");
    const b = new DryBackend(ctx.stateRoot);
    for (const c of cells)
      for (const m of c.members)
        m.alive = c.place === "cells" && m.command !== undefined && b.isAlive({ cell: c.name, spawnId: m.spawnId });
  },
};
