// Values the schema lets through but that cannot work: a heartbeat or downedTimeout so short it
// takes running members down, a checkpoint schedule firing every second, graces and retentions so
// long their dates overflow, an empty program. Each is an error at its line. Pure: no I/O.
import { cronParser } from "../util/cron.js";
import type { Diagnostic } from "./diagnostics.js";
import { formatDuration } from "./durations.js";
import { formatSize } from "./quantity.js";
import type { DesiredCell, SourcePos } from "./types.js";

const S = 1000;
const MIN = 60 * S;
const H = 60 * MIN;
const D = 24 * H;

export const VALUE_LIMITS = {
  minHeartbeatMs: 5 * S,
  maxHeartbeatMs: 24 * H,
  minDownedTimeoutMs: 1 * MIN,
  maxDownedTimeoutMs: 7 * D,
  maxGraceMs: 7 * D,
  maxRetentionMs: 366 * D,
  minLogBytes: 16 * 1024,
  minSliceMs: 1 * S,
  maxSliceMs: 24 * H,
} as const;

// Whether a cron expression fires more often than once a minute (a seconds field with several values).
export function firesEverySecond(expr: string): boolean {
  if (expr.trim().split(/\s+/).length !== 6) return false;
  try {
    return cronParser().parse(expr, { tz: "UTC" }).fields.second.values.length > 1;
  } catch {
    return false; // an invalid expression is reported by its own rule
  }
}

// spec.checkpoint.maxSize against the host's bound (LAZARUS_CHECKPOINT_MAX_SIZE), the most a cell
// may ask for, and the 1Mi minimum.
export function checkpointSizeDiagnostics(
  cell: DesiredCell,
  at: (p: (string | number)[]) => SourcePos,
  hostMaxBytes: number,
): Diagnostic[] {
  const asked = cell.checkpoint.maxBytes;
  if (asked === undefined) return [];
  const where = {
    severity: "error" as const,
    ...at(["spec", "checkpoint", "maxSize"]),
    field: "spec.checkpoint.maxSize",
  };
  if (asked > hostMaxBytes)
    return [
      {
        ...where,
        message: `maxSize ${formatSize(asked)} is above this host's bound of ${formatSize(hostMaxBytes)} (LAZARUS_CHECKPOINT_MAX_SIZE)`,
        hint: `set it to ${formatSize(hostMaxBytes)} or less, or remove it to get the host's bound; the operator sets LAZARUS_CHECKPOINT_MAX_SIZE`,
      },
    ];
  if (asked < 1024 * 1024)
    return [
      {
        ...where,
        message: `maxSize is ${asked} bytes, less than the 1Mi minimum`,
        hint: "set it to 1Mi or more, e.g. 2Gi",
      },
    ];
  return [];
}

// The diagnostics of one cell's values against VALUE_LIMITS.
export function valueDiagnostics(cell: DesiredCell, at: (p: (string | number)[]) => SourcePos): Diagnostic[] {
  const out: Diagnostic[] = [];
  const err = (p: (string | number)[], field: string, message: string, hint: string): void => {
    out.push({ severity: "error", ...at(p), field, message, hint });
  };
  const range = (p: (string | number)[], field: string, ms: number, min: number, max: number): void => {
    if (ms < min)
      err(
        p,
        field,
        `${field.split(".").pop()} ${formatDuration(ms)} is shorter than the ${formatDuration(min)} minimum`,
        `set it to ${formatDuration(min)} or more`,
      );
    else if (ms > max)
      err(
        p,
        field,
        `${field.split(".").pop()} exceeds the ${formatDuration(max)} maximum`,
        `set it to ${formatDuration(max)} or less`,
      );
  };
  const L = VALUE_LIMITS;
  range(["spec", "grace"], "spec.grace", cell.graceMs, 0, L.maxGraceMs);
  range(["spec", "retention"], "spec.retention", cell.retentionMs, 0, L.maxRetentionMs);
  range(
    ["spec", "downedTimeout"],
    "spec.downedTimeout",
    cell.downedTimeoutMs,
    L.minDownedTimeoutMs,
    L.maxDownedTimeoutMs,
  );
  if (cell.progress)
    range(["spec", "progress", "slice"], "spec.progress.slice", cell.progress.sliceMs, L.minSliceMs, L.maxSliceMs);
  if (cell.progress?.onStall === "substitute" && !cell.members.some((m) => m.role === "substitute"))
    err(
      ["spec", "progress", "onStall"],
      "spec.progress.onStall",
      "onStall: substitute needs a member with role substitute that replaces an executor",
      "declare a substitute (role: substitute, replaces: <executor>, policy.allowSubstitutes: true), or choose restart, abort or notify",
    );
  if (cell.logs?.maxBytes !== undefined && cell.logs.maxBytes < L.minLogBytes) {
    err(
      ["spec", "logs", "maxSize"],
      "spec.logs.maxSize",
      `maxSize is ${cell.logs.maxBytes} bytes, less than the 16Ki minimum`,
      "set it to 16Ki or more, e.g. 10Mi",
    );
  }
  const schedule = cell.checkpoint.schedule;
  if (schedule !== undefined && firesEverySecond(schedule)) {
    err(
      ["spec", "checkpoint", "schedule"],
      "spec.checkpoint.schedule",
      `"${schedule}" fires more often than once a minute`,
      'checkpoint at most once a minute: use five fields, e.g. "*/15 * * * *"',
    );
  }
  cell.members.forEach((m, i) => {
    if (m.command !== undefined && !m.command[0]?.trim()) {
      err(
        ["spec", "members", i, "command", 0],
        `spec.members[${i}].command[0]`,
        "the program to run is empty",
        'name the program first, e.g. command: ["node", "./agents/a.mjs"], or remove command',
      );
    }
    if (m.heartbeatMs !== undefined)
      range(
        ["spec", "members", i, "heartbeat"],
        `spec.members[${i}].heartbeat`,
        m.heartbeatMs,
        L.minHeartbeatMs,
        L.maxHeartbeatMs,
      );
  });
  return out;
}
