// The backend contract, checked for the process backend (no memory limits: it enforces none).
import { isAlive, killAll, recordedPids } from "../helpers.js";
import { backendConformance } from "./conformance.js";

backendConformance({
  backend: "process",
  env: {},
  memory: "unlimited",
  cleanup: async (state) => {
    for (const p of recordedPids(state)) {
      if (isAlive(p.pid, p.startTime)) {
        try {
          process.kill(-p.pid, "SIGKILL");
        } catch {
          // gone
        }
      }
    }
    killAll(state);
  },
});
