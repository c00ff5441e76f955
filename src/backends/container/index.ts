// Backend container: each member in a container of the host's engine (podman or docker), from an
// image already present (never pulled). Its live half is container.ts.
import { hostname } from "node:os";
import type { Diagnostic } from "../../config/diagnostics.js";
import type { DesiredCell } from "../../config/types.js";
import type { At, BackendSpec } from "../contract.js";
import type { ContainerEngine } from "./engine.js";
import { containerName } from "./name.js";

function validate(cell: DesiredCell, at: At): Diagnostic[] {
  if (cell.container) return [];
  return [
    {
      severity: "error",
      ...at(["spec", "backend"]),
      field: "spec.container",
      message: "backend container needs spec.container.image",
      hint: "add container: {image: localhost/agent:1}, an image present in the host's engine",
    },
  ];
}

// An engine that answers, and the image present locally (never pulled).
function engineChecks(
  cell: DesiredCell,
  at: At,
  engine: ContainerEngine,
  hasImage: (engine: ContainerEngine, image: string) => boolean,
): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const problem of engine.problems) {
    out.push({
      severity: "error",
      ...at(["spec", "backend"]),
      field: "spec.backend",
      message: `backend container cannot run on this host: ${problem}`,
      hint: "install and configure podman (or docker) as docs/backends.md says, or use backend: sandbox",
    });
  }
  if (engine.problems.length === 0 && cell.container && !hasImage(engine, cell.container.image)) {
    out.push({
      severity: "error",
      ...at(["spec", "container", "image"]),
      field: "spec.container.image",
      message: `image ${cell.container.image} is not present in ${engine.kind}`,
      hint: `build or load it first (${engine.kind} images); Lazarus never pulls`,
    });
  }
  return out;
}

const place = (x: { container?: { image: string } | undefined }): string => `container ${x.container?.image ?? "?"}`;

export const containerBackend: BackendSpec = {
  name: "container",
  summary: "a container of the host's engine (podman or docker) per member, from a local image",
  capabilities: {
    checkpoint: true,
    heartbeat: true,
    progress: true, // project/ and shared/ are the host's directories, bound in
    python: false,
    sessions: { shell: "image", readOnlyRoles: true },
    diskQuota: true,
    network: "proxy",
    localPids: true,
    projectHere: true,
    poll: false,
    hostPrograms: false, // looked up in the image
    cellFields: ["network", "egress", "container"],
    replacedBy: ["spec.container.image"],
  },
  invariants: ["I1", "I2", "I3", "I4", "I5", "I6"],
  validate,
  // The engine and user lookups (spawning podman or docker) are loaded by the first container cell.
  hostChecks: async (cell, at) => {
    const [{ containerEngine, hasImage }, { containerUserDiagnostics }] = await Promise.all([
      import("./engine.js"),
      import("./user.js"),
    ]);
    return [...containerUserDiagnostics(cell, at), ...engineChecks(cell, at, containerEngine(), hasImage)];
  },
  // The image is the members' whole filesystem: a new one is a new cell (-/+).
  place,
  describe: place,
  // Members of network host share the host's loopback; the others reach the gateway's bridge.
  gatewayReach: (cell) => (cell.network === "host" ? "host" : "namespace"),
  where: {
    cell: (rec) => ({
      host: hostname(),
      engine: rec.containerEngine ?? null,
      image: rec.container?.image ?? null,
      uid: rec.containerUid?.uid ?? null,
    }),
    member: (_rec, m) => (m.spawnId && m.command ? { container: containerName(m.spawnId) } : undefined),
    text: (w) =>
      [w.engine ? `${w.engine}` : "", w.image ? `image ${w.image}` : "", w.uid != null ? `uid ${w.uid}` : ""]
        .filter(Boolean)
        .join(", "),
  },
  verify: {
    probe: {
      label: "container",
      engineEnv: ["container", "HOSTNAME"], // set by the engine in every container, not the host's
      operatorBinds: false, // no operator binds in a container
      stop: {
        check: "stop removes every container of the cell",
        detail:
          "close and scrub remove every container labelled with the cell's incarnation and refuse to go on while one is left",
      },
    },
  },
  diskUsage: async (dir) => (await import("../disk/image.js")).diskUsage(dir),
  live: async () => {
    const { ContainerBackend } = await import("./container.js");
    return (ctx) => new ContainerBackend(ctx.stateRoot, ctx.settings, ctx.onExit);
  },
};
