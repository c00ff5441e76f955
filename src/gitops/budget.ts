// The deletion budget: an automatic apply that would close too many cells because their
// declarations vanished stops before acting. Pure.
import type { Desired } from "../config/types.js";
import type { Observed } from "../observe/observe.js";
import type { Action } from "../plan/actions.js";

export interface Budget {
  maxClose: number; // absolute
  maxFraction: number; // of the live cells
}

export const DEFAULT_BUDGET: Budget = { maxClose: 5, maxFraction: 0.25 };

export type BudgetVerdict = { ok: true } | { ok: false; closes: string[]; live: number; reason: string };

export function checkBudget(actions: Action[], desired: Desired, observed: Observed, budget: Budget): BudgetVerdict {
  const closes = [
    ...new Set(actions.filter((a) => a.kind === "close" && !desired.cells.has(a.cell)).map((a) => a.cell)),
  ].sort();
  const live = [...observed.cells.values()].filter((o) => o.live?.record && o.live.record.state !== "closed").length;
  if (closes.length === 0) return { ok: true };
  const all = closes.length >= live;
  const over = closes.length > budget.maxClose || closes.length > budget.maxFraction * live;
  if (!all && !over) return { ok: true };
  const reason = all
    ? `this revision would close every cell (${closes.length} of ${live}); such a plan is always held`
    : `this revision would close ${closes.length} of ${live} live cells, over the budget (at most ${budget.maxClose} and ${Math.round(budget.maxFraction * 100)}%)`;
  return { ok: false, closes, live, reason };
}
