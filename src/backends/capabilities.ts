// What each backend can enforce, known without making one (loading and planning ask, by name;
// the core never compares a backend's name itself). Kept beside the registry: a backend added
// there says here what it can do.
import type { BackendName } from "../config/types.js";

export interface Capabilities {
  // The cell's tree lives on a disk image of spec.resources.disk (src/backends/disk/): members
  // get ENOSPC beyond it. Without it a member can fill the filesystem that holds the state dir.
  diskQuota: boolean;
  // The backend-specific update fields it reads (the rows of src/cells/fields.ts marked backend):
  // a change of any other such field plans nothing for its cells.
  cellFields: readonly string[];
}

const CAPABILITIES: Readonly<Record<BackendName, Capabilities>> = {
  process: { diskQuota: false, cellFields: [] },
  sandbox: { diskQuota: true, cellFields: ["network", "egress"] },
  container: { diskQuota: true, cellFields: ["network", "egress", "container"] },
  kubernetes: { diskQuota: false, cellFields: ["network", "egress", "kubernetes"] }, // its volume's size is spec.kubernetes.storage
  remote: { diskQuota: false, cellFields: ["remote"] },
  venv: { diskQuota: false, cellFields: [] },
  docker: { diskQuota: false, cellFields: [] },
};

export const capabilities = (name: BackendName): Capabilities => CAPABILITIES[name] ?? { diskQuota: false, cellFields: [] };
