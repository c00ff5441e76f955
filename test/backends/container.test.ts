// The backend contract, checked for the container backend (podman or docker, whichever the host
// has; skipped with the reason when its engine cannot run a container here).
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { backendConformance } from "./conformance.js";
import { IMAGE, cleanupContainers, containersOf, skipReason } from "./container-helpers.js";

// Every cell incarnation a state dir has seen, from its ledger (records are gone after scrub).
function ledgerUids(state: string): string[] {
  const out = new Set<string>();
  const file = path.join(state, "ledger.jsonl");
  if (!existsSync(file)) return [];
  for (const m of readFileSync(file, "utf8").matchAll(/"uid":"([0-9a-f]{8,})"/g)) out.add(m[1] as string);
  return [...out];
}

backendConformance({
  backend: "container",
  env: { LAZARUS_UID_RANGE: "237100-237199" },
  extra: `  container: {image: "${IMAGE}"}`,
  // podman with runc on cgroup v1 reports OOMKilled false: the member is seen SIGKILLed
  memory: "killed",
  skip: skipReason,
  leftovers: async (state) => containersOf(ledgerUids(state)),
  cleanup: async (state) => cleanupContainers(state, ledgerUids(state)),
});
