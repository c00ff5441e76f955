// The library surface: load → observe → plan → apply.
export { loadConfig, loadFileText } from "./config/load.js";
export type { Desired, DesiredCell, DesiredMember } from "./config/types.js";
export type { Diagnostic } from "./config/diagnostics.js";
export { observe } from "./observe/observe.js";
export { plan, type Plan } from "./plan/plan.js";
export type { Action, ActionKind } from "./plan/actions.js";
export { computePlan, runApply } from "./engine.js";
export { verifyLedger } from "./ledger/ledger.js";
