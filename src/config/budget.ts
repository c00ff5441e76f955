// spec.budget against what the model gateway can count and the operator's ceilings
// (LAZARUS_MAX_BUDGET_TOKENS, LAZARUS_MAX_BUDGET_COST, per day): an ask above one is an error at
// its line, so the file is quarantined and its cells held, never closed. Pure.
import type { Diagnostic } from "./diagnostics.js";
import type { CellBudget, DesiredCell, SourcePos } from "./types.js";
import type { HostLimits } from "../host/limits.js";
import { formatDuration } from "./durations.js";

type At = (p: (string | number)[]) => SourcePos;

const DAY_MS = 86_400_000;
export const MIN_BUDGET_PERIOD_MS = 60_000; // usage is counted by the minute
export const MAX_BUDGET_PERIOD_MS = 31 * DAY_MS; // as long as the gateway keeps its counts

// The most a budget lets a cell spend within one day: its amount once per period that fits in a
// day (a rolling window: any day holds at most ceil(day / period) of them).
export function perDay(amount: number, periodMs: number): number {
  return amount * Math.max(1, Math.ceil(DAY_MS / periodMs));
}

// The budget a cell runs under: its own, else the operator's ceilings as a daily budget, else none.
export function effectiveBudget(d: Pick<DesiredCell, "budget">, limits: HostLimits): CellBudget | undefined {
  if (d.budget) return d.budget;
  if (limits.maxBudgetTokens === undefined && limits.maxBudgetCost === undefined) return undefined;
  return {
    ...(limits.maxBudgetTokens !== undefined ? { tokens: limits.maxBudgetTokens } : {}),
    ...(limits.maxBudgetCost !== undefined ? { cost: limits.maxBudgetCost } : {}),
    periodMs: DAY_MS,
  };
}

export function budgetDiagnostics(cell: DesiredCell, at: At, limits: HostLimits): Diagnostic[] {
  const b = cell.budget;
  if (!b) return [];
  const out: Diagnostic[] = [];
  if (b.tokens === undefined && b.cost === undefined) {
    out.push({
      severity: "error",
      ...at(["spec", "budget"]),
      field: "spec.budget",
      message: "a budget needs tokens, cost or both",
      hint: "write e.g. budget: {tokens: 2000000, period: 1d}",
    });
    return out;
  }
  if (b.periodMs < MIN_BUDGET_PERIOD_MS || b.periodMs > MAX_BUDGET_PERIOD_MS) {
    out.push({
      severity: "error",
      ...at(["spec", "budget", "period"]),
      field: "spec.budget.period",
      message: `a budget's period is from 1m to 31d (usage is counted by the minute and kept 31 days)`,
      hint: "write a period such as 1h, 1d or 7d",
    });
    return out;
  }
  const check = (key: "tokens" | "cost", asked: number | undefined, max: number | undefined, setting: string) => {
    if (asked === undefined || max === undefined) return;
    const daily = perDay(asked, b.periodMs);
    if (daily <= max) return;
    out.push({
      severity: "error",
      ...at(["spec", "budget", key]),
      field: `spec.budget.${key}`,
      message: `budget ${key} ${asked} per ${formatDuration(b.periodMs)} allows up to ${round(daily)} a day, above this host's ceiling of ${max} a day (${setting})`,
      hint: `ask for at most ${round(max / perDay(1, b.periodMs))} per ${formatDuration(b.periodMs)}, or the operator raises ${setting} where Lazarus runs`,
    });
  };
  check("tokens", b.tokens, limits.maxBudgetTokens, "LAZARUS_MAX_BUDGET_TOKENS");
  check("cost", b.cost, limits.maxBudgetCost, "LAZARUS_MAX_BUDGET_COST");
  return out;
}

const round = (n: number): number => Math.round(n * 10_000) / 10_000;
