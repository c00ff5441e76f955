// The cell lifecycle of spec §4, encoded once. Every state change goes through transition().
import { LazarusError } from "../util/errors.js";

export const CELL_STATES = ["invited", "preparing", "active", "checkpointing", "downed", "closed", "archived"] as const;
export type CellState = (typeof CELL_STATES)[number];

// from → the states it may move to.
const TRANSITIONS: Readonly<Record<CellState, readonly CellState[]>> = {
  invited: ["preparing", "closed"],
  preparing: ["active", "closed"],
  active: ["checkpointing", "closed", "downed"],
  checkpointing: ["active", "closed"],
  downed: ["active", "closed"],
  closed: ["archived", "active"], // closed → active is resurrection during the graveyard grace
  archived: [],
};

export function canTransition(from: CellState, to: CellState): boolean {
  return TRANSITIONS[from].includes(to);
}

// The state after a legal transition; an illegal one is an error and nothing is written.
export function transition(cell: string, from: CellState, to: CellState): CellState {
  if (!canTransition(from, to)) {
    throw new LazarusError(
      "ILLEGAL_TRANSITION",
      `cell ${cell}: illegal lifecycle transition ${from} → ${to} (allowed from ${from}: ${TRANSITIONS[from].join(", ") || "none"})`,
    );
  }
  return to;
}
