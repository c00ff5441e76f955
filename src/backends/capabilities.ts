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
  // The schema paths whose change replaces its cells whole (rows of src/cells/fields.ts marked
  // backend, by "replace"), beside spec.backend itself.
  replacedBy: readonly string[];
}

const CAPABILITIES: Readonly<Record<BackendName, Capabilities>> = {
  process: { diskQuota: false, cellFields: [], replacedBy: [] },
  sandbox: { diskQuota: true, cellFields: ["network", "egress"], replacedBy: [] },
  container: { diskQuota: true, cellFields: ["network", "egress", "container"], replacedBy: ["spec.container.image"] },
  kubernetes: { diskQuota: false, cellFields: ["network", "egress", "kubernetes"], replacedBy: [] }, // its volume's size is spec.kubernetes.storage
  remote: { diskQuota: false, cellFields: ["remote"], replacedBy: [] },
  venv: { diskQuota: false, cellFields: [], replacedBy: [] },
  docker: { diskQuota: false, cellFields: [], replacedBy: [] },
};

export const capabilities = (name: BackendName): Capabilities => CAPABILITIES[name] ?? { diskQuota: false, cellFields: [], replacedBy: [] };
