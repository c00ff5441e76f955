// The library surface for agents: `import { nextModel } from "lazarus/portfolio"`.
export {
  nextModel,
  cooldownUntil,
  type NextModel,
  type NextModelInput,
  type HealthEvent,
  type Outcome,
  type Skipped,
} from "./next.js";
export { resolvePortfolio, portfolioDocument, type Who } from "./resolve.js";
export { reportOutcome, readHealth, healthFile } from "./health.js";
export { importLegacy } from "./legacy.js";
export {
  ERROR_CLASSES,
  type ErrorClass,
  type ModelSpec,
  type Portfolio,
  type Resolved,
  type Selector,
} from "./types.js";
