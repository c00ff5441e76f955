// The backend contract, checked for the sandbox backend (bubblewrap, a uid range of its own).
import { backendConformance } from "./conformance.js";
import { cleanupCgroups, sandboxEnv, skipReason } from "../sandbox/helpers.js";

const env = sandboxEnv("backends/sandbox");

backendConformance({
  backend: "sandbox",
  env,
  memory: "oom",
  skip: skipReason,
  cleanup: async () => {
    await cleanupCgroups(env.LAZARUS_CGROUP_ROOT as string);
  },
});
