// The live backends of one state dir (apply, the daemon, sessions, verify): each row's live half
// (see table.ts, the registry's table), loaded here once, when this module is, and made per
// state dir when first asked for. plan and validate never load this module.
import type { HostSettings } from "../host/settings.js";
import type { Backend, StartSpec } from "./backend.js";
import type { BackendContext } from "./contract.js";
import { REGISTRY, backendSpec } from "./table.js";

export { REGISTRY, RETIRED, DEFAULT_BACKEND, backendNames, backendSpec, findBackend } from "./table.js";

const makers = new Map<string, (ctx: BackendContext) => Backend>(
  await Promise.all(REGISTRY.map(async (b) => [b.name, await b.live()] as const)),
);

export interface Backends {
  get(name: string): Backend;
}

// onExit: a member process this run started has ended.
export function backends(
  stateRoot: string,
  hostEnv: NodeJS.ProcessEnv,
  settings: HostSettings,
  onExit?: (spec: StartSpec, pid: number) => void,
): Backends {
  const made = new Map<string, Backend>();
  return {
    get(name: string): Backend {
      let b = made.get(name);
      if (!b) {
        const make = makers.get(backendSpec(name).name);
        if (!make) throw new Error(`BUG: backend ${name} has no live half loaded`);
        b = make({ stateRoot, hostEnv, settings, ...(onExit ? { onExit } : {}) });
        made.set(name, b);
      }
      return b;
    },
  };
}
