// Resource quantities as users write them: memory 512Mi / 1Gi / 2G, cpu 1.5 or 500m.
import type { Resources } from "./types.js";

const MEMORY_UNITS: Record<string, number> = {
  "": 1,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
};

// Bytes for a memory quantity, or undefined when it is not one.
export function parseMemory(text: string): number | undefined {
  const m = /^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$/.exec(text);
  if (!m) return undefined;
  const bytes = Math.floor(Number(m[1]) * (MEMORY_UNITS[m[2] ?? ""] as number));
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

const SIZE_UNITS = ["Ki", "Mi", "Gi", "Ti", "Pi"] as const;

// Bytes as a quantity of the cell's own notation: 10Gi, 1.5Ti, 512 (bytes).
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes}`;
  let v = bytes;
  let unit = "";
  for (const u of SIZE_UNITS) {
    if (v < 1024) break;
    v /= 1024;
    unit = u;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)}${unit}`;
}

// Cores for a cpu quantity (1.5, "1500m"), or undefined when it is not one.
export function parseCpu(value: number | string): number | undefined {
  if (typeof value === "number") return value > 0 ? value : undefined;
  const m = /^([0-9]+)m$/.exec(value);
  return m && Number(m[1]) > 0 ? Number(m[1]) / 1000 : undefined;
}

export interface RawResources {
  memory?: string;
  disk?: string; // the cell's (spec.resources only): not a member's limit
  pids?: number;
  cpu?: number | string;
}

// Parsed resources; the schema has already checked the shapes.
export function toResources(r: RawResources | undefined): Resources {
  if (!r) return {};
  const memoryBytes = r.memory !== undefined ? parseMemory(r.memory) : undefined;
  const cpu = r.cpu !== undefined ? parseCpu(r.cpu) : undefined;
  return {
    ...(memoryBytes !== undefined ? { memoryBytes } : {}),
    ...(r.pids !== undefined ? { pids: r.pids } : {}),
    ...(cpu !== undefined ? { cpu } : {}),
  };
}

// A byte count as people write it: 10Gi, 512Mi, 1.5Gi, 4096 (binary units, at most 2 decimals).
export function formatBytes(bytes: number): string {
  for (const [unit, size] of [
    ["Ti", 1024 ** 4],
    ["Gi", 1024 ** 3],
    ["Mi", 1024 ** 2],
    ["Ki", 1024],
  ] as const) {
    if (bytes >= size) return `${Number((bytes / size).toFixed(2))}${unit}`;
  }
  return String(bytes);
}
