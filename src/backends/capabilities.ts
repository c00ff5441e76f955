// What each backend can enforce, known without making one (loading and planning ask, by name;
// the core never compares a backend's name itself). Kept beside the registry: a backend added
// there says here what it can do.
import type { BackendName } from "../config/types.js";

export interface Capabilities {
  // The cell's tree lives on a disk image of spec.resources.disk (src/backends/disk/): members
  // get ENOSPC beyond it. Without it a member can fill the filesystem that holds the state dir.
  diskQuota: boolean;
}

const CAPABILITIES: Readonly<Record<BackendName, Capabilities>> = {
  process: { diskQuota: false },
  sandbox: { diskQuota: true },
  container: { diskQuota: true },
  kubernetes: { diskQuota: false }, // its volume's size is spec.kubernetes.storage
  remote: { diskQuota: false },
  venv: { diskQuota: false },
  docker: { diskQuota: false },
};

export const capabilities = (name: BackendName): Capabilities => CAPABILITIES[name] ?? { diskQuota: false };
