// One registry of backends, looked up per cell by its declared backend.
import type { BackendName } from "../config/types.js";
import type { HostSettings } from "../host/settings.js";
import { LazarusError } from "../util/errors.js";
import type { Backend, StartSpec } from "./backend.js";
import { ProcessBackend } from "./process.js";
import { SandboxBackend } from "./sandbox/sandbox.js";
import { ContainerBackend } from "./container/container.js";
import { KubernetesBackend } from "./kubernetes/kubernetes.js";
import { RemoteBackend } from "./remote/remote.js";

export interface Backends {
  get(name: BackendName): Backend;
}

// The backends of one state dir. onExit: a member process this run started has ended.
export function backends(stateRoot: string, hostEnv: NodeJS.ProcessEnv, settings: HostSettings, onExit?: (spec: StartSpec, pid: number) => void): Backends {
  const made = new Map<BackendName, Backend>();
  return {
    get(name: BackendName): Backend {
      let b = made.get(name);
      if (!b) {
        if (name === "process") b = new ProcessBackend(hostEnv, onExit, stateRoot);
        else if (name === "sandbox") b = new SandboxBackend(stateRoot, settings, onExit);
        else if (name === "container") b = new ContainerBackend(stateRoot, settings, onExit);
        else if (name === "kubernetes") b = new KubernetesBackend();
        else if (name === "remote") b = new RemoteBackend(stateRoot, hostEnv);
        else throw new LazarusError("NO_BACKEND", `backend ${name} is not supported yet`);
        made.set(name, b);
      }
      return b;
    },
  };
}
