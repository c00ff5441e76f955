// What a cell file asks for, against the operator's ceilings (src/host/limits.ts): an ask above
// one is an error at its line, so the file is quarantined and its cells held, never closed.
import type { Diagnostic } from "./diagnostics.js";
import type { DesiredCell, Resources, SourcePos } from "./types.js";
import { formatBytes, type HostLimits } from "../host/limits.js";

type At = (p: (string | number)[]) => SourcePos;

// The position of a path that may not be in the document (a member without resources of its own):
// at() answers the nearest node that is, so a path at its parent's position is not there.
function tryAt(at: At, p: (string | number)[]): SourcePos | undefined {
  try {
    const pos = at(p);
    const parent = at(p.slice(0, -1));
    return pos.line === parent.line && pos.col === parent.col ? undefined : pos;
  } catch {
    return undefined;
  }
}

function over(where: SourcePos, field: string, asked: string, ceiling: string, setting: string): Diagnostic {
  return {
    severity: "error",
    ...where,
    field,
    message: `${asked} is above this host's ceiling of ${ceiling} (${setting})`,
    hint: `ask for at most ${ceiling}, or the operator raises ${setting} where Lazarus runs`,
  };
}

// One resources block (spec.resources or a member's) against the ceilings.
function resourceDiagnostics(r: Resources, base: (string | number)[], at: At, limits: HostLimits): Diagnostic[] {
  const out: Diagnostic[] = [];
  const field = (k: string): string =>
    [...base, k].map((p, i) => (typeof p === "number" ? `[${p}]` : i ? `.${p}` : p)).join("");
  const check = (
    key: "memory" | "pids" | "cpu",
    asked: number | undefined,
    max: number,
    show: (n: number) => string,
    setting: string,
  ): void => {
    if (asked === undefined || asked <= max) return;
    const where = tryAt(at, [...base, key]);
    if (where) out.push(over(where, field(key), `${key} ${show(asked)}`, show(max), setting));
  };
  check("memory", r.memoryBytes, limits.maxMemoryBytes, formatBytes, "LAZARUS_MAX_MEMORY");
  check("pids", r.pids, limits.maxPids, String, "LAZARUS_MAX_PIDS");
  check("cpu", r.cpu, limits.maxCpu, String, "LAZARUS_MAX_CPU");
  return out;
}

// Whether any ask of a resources block is above its ceiling (as resourceDiagnostics judges one).
const above = (asked: number | undefined, max: number): boolean => asked !== undefined && !(asked <= max);
const overAny = (r: Resources, limits: HostLimits): boolean =>
  above(r.memoryBytes, limits.maxMemoryBytes) || above(r.pids, limits.maxPids) || above(r.cpu, limits.maxCpu);

// Every ask of the cell above a ceiling.
export function ceilingDiagnostics(cell: DesiredCell, at: At, limits: HostLimits): Diagnostic[] {
  const out = resourceDiagnostics(cell.resources, ["spec", "resources"], at, limits);
  cell.members.forEach((m, i) => {
    // Positions are looked up only for an ask above a ceiling (most cells have none).
    if (overAny(m.resources, limits) && tryAt(at, ["spec", "members", i, "resources"]))
      out.push(...resourceDiagnostics(m.resources, ["spec", "members", i, "resources"], at, limits));
  });
  const logs = cell.logs;
  if (logs?.maxBytes !== undefined && logs.maxBytes > limits.maxLogBytes) {
    out.push(
      over(
        at(["spec", "logs", "maxSize"]),
        "spec.logs.maxSize",
        `maxSize ${formatBytes(logs.maxBytes)}`,
        formatBytes(limits.maxLogBytes),
        "LAZARUS_MAX_LOG_SIZE",
      ),
    );
  }
  if (logs?.keep !== undefined && logs.keep > limits.maxLogKeep) {
    out.push(
      over(
        at(["spec", "logs", "keep"]),
        "spec.logs.keep",
        `keep ${logs.keep}`,
        String(limits.maxLogKeep),
        "LAZARUS_MAX_LOG_KEEP",
      ),
    );
  }
  return out;
}
