// The registry's table: one row per backend, the only list of them. Pure: each row's live half is
// loaded only by registry.ts, so plan and validate never load an implementation. The schema's
// enum of spec.backend, the check of LAZARUS_BACKENDS and every question the core asks a backend
// come from this table (test/backends/registry.test.ts fails when schemas/cell.schema.json
// disagrees). A new backend is one folder under src/backends/ exporting a BackendSpec, and one
// row here.
import { LazarusError } from "../util/errors.js";
import type { BackendSpec } from "./contract.js";
import { processBackend } from "./process/index.js";
import { sandboxBackend } from "./sandbox/index.js";
import { containerBackend } from "./container/index.js";
import { kubernetesBackend } from "./kubernetes/index.js";
import { remoteBackend } from "./remote/index.js";
import { dryBackend } from "./dry/index.js";

export const REGISTRY: readonly BackendSpec[] = [
  processBackend,
  sandboxBackend,
  containerBackend,
  kubernetesBackend,
  remoteBackend,
  dryBackend,
];

// Names the schema still accepts but no backend answers to: a cell naming one gets this hint.
export const RETIRED: Readonly<Record<string, string>> = {
  venv: "use backend: process or backend: sandbox, with spec.runtime.python ({} or {requirements: FILE}) for a Python venv",
  docker: "use backend: process, sandbox, container or remote",
};

// The backend of a cell that names none (the schema's default).
export const DEFAULT_BACKEND = processBackend.name;

const byName = new Map(REGISTRY.map((b) => [b.name, b]));

export const backendNames = (): string[] => REGISTRY.map((b) => b.name);

// The backend of that name, or undefined (a retired name, or a record from another version).
export const findBackend = (name: string): BackendSpec | undefined => byName.get(name);

// The backend of that name; a name no row answers to is an error a person can act on.
export function backendSpec(name: string): BackendSpec {
  const b = byName.get(name);
  if (!b)
    throw new LazarusError("NO_BACKEND", `backend ${name} is not supported (backends: ${backendNames().join(", ")})`);
  return b;
}
