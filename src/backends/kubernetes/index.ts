// Backend kubernetes: a Pod (or an agent-sandbox Sandbox) per member in a cluster, the cell's tree
// on a volume claim there (docs/kubernetes.md). Its live half is kubernetes.ts.
import type { Diagnostic } from "../../config/diagnostics.js";
import type { DesiredCell } from "../../config/types.js";
import type { At, BackendSpec } from "../contract.js";

// Its own fields, and what a cluster cannot do yet: said at the line rather than failed at apply.
function validate(cell: DesiredCell, at: At): Diagnostic[] {
  const out: Diagnostic[] = [];
  const err = (p: (string | number)[], field: string, message: string, hint: string): void => {
    out.push({ severity: "error", ...at(p), field, message, hint });
  };
  if (!cell.kubernetes)
    err(
      ["spec", "backend"],
      "spec.kubernetes",
      "backend kubernetes needs spec.kubernetes",
      "add kubernetes: {namespace: agents, image: registry.example/agent:1} (see docs/kubernetes.md)",
    );
  if (cell.checkpoint.schedule !== undefined)
    err(
      ["spec", "checkpoint", "schedule"],
      "spec.checkpoint.schedule",
      "checkpoints of a kubernetes cell are not supported yet",
      "remove the schedule (docs/kubernetes.md says what is missing)",
    );
  if (cell.restoreFrom !== undefined)
    err(
      ["spec", "restoreFrom"],
      "spec.restoreFrom",
      "restoring a kubernetes cell from a checkpoint is not supported yet",
      "remove restoreFrom",
    );
  cell.members.forEach((m, i) => {
    if (m.heartbeatMs !== undefined)
      err(
        ["spec", "members", i, "heartbeat"],
        `spec.members[${i}].heartbeat`,
        "heartbeats of kubernetes members are not supported yet (the heartbeat file is on the cell's volume, not read by Lazarus)",
        "remove heartbeat; the pod's phase says whether the member runs",
      );
  });
  if (cell.python)
    err(
      ["spec", "runtime", "python"],
      "spec.runtime.python",
      "spec.runtime.python is for local backends; a kubernetes cell's runtime is its image",
      "remove spec.runtime and put the packages in the image",
    );
  return out;
}

function stray(cell: DesiredCell, at: At): Diagnostic[] {
  if (!cell.kubernetes) return [];
  return [
    {
      severity: "error",
      ...at(["spec", "kubernetes"]),
      field: "spec.kubernetes",
      message: `spec.kubernetes is only read by backend kubernetes (this cell has backend ${cell.backend})`,
      hint: "set backend: kubernetes, or remove spec.kubernetes",
    },
  ];
}

export const kubernetesBackend: BackendSpec = {
  name: "kubernetes",
  summary: "a Pod or agent-sandbox Sandbox per member in a cluster, the cell's tree on a volume claim",
  capabilities: {
    checkpoint: false, // the tree is on the cluster's volume (docs/kubernetes.md)
    heartbeat: false,
    progress: false, // project/ is on the cluster's volume
    python: false,
    sessions: false, // kubectl exec into the member's pod
    diskQuota: false, // its volume's size is spec.kubernetes.storage
    network: "policy",
    localPids: false,
    projectHere: false, // project/ is on the cluster's volume
    poll: false,
    hostPrograms: false, // looked up in the image
    cellFields: ["network", "egress", "kubernetes"],
    replacedBy: [],
  },
  invariants: ["I2", "I4", "I6"], // the env allowlist and a Secret per cell; the NetworkPolicy; the ledger
  validate,
  stray,
  // Its Secret, volume claim and NetworkPolicy are made again when these change.
  where: {
    cell: (rec) => ({
      host: rec.kubernetes?.context ?? null,
      namespace: rec.kubernetes?.namespace ?? null,
      image: rec.kubernetes?.image ?? null,
    }),
    member: (_rec, m) => (m.handle ? { pod: m.handle } : undefined),
    text: (w) =>
      [w.namespace ? `namespace ${w.namespace}` : "", w.image ? `image ${w.image}` : ""].filter(Boolean).join(", "),
  },
  verify: {
    checks: () => [
      {
        invariant: "I1",
        check: "probe in the member's pod",
        ok: false,
        detail:
          "not probed: lazarus verify does not run its probe in a cluster's pods yet (isolation there is the RuntimeClass's and the NetworkPolicy's; see docs/kubernetes.md)",
      },
    ],
  },
  render: {
    what: "the Kubernetes objects (Secret, PersistentVolumeClaim, NetworkPolicy, one Pod or Sandbox per member)",
    objects: async (d, values) => {
      const [{ renderCell }, { desiredRenderCell }] = await Promise.all([
        import("./render.js"),
        import("./desired.js"),
      ]);
      return renderCell(desiredRenderCell(d, values));
    },
  },
  live: async () => {
    const { KubernetesBackend } = await import("./kubernetes.js");
    return () => new KubernetesBackend();
  },
  // The cluster client is loaded only when a kubernetes cell is observed.
  observe: async (cells) => (await import("./observe.js")).observeKubernetes(cells),
};
