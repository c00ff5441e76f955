// The JSON Schemas in schemas/ are the single source of the desired-state shape.
import { readFileSync } from "node:fs";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";

const schemaDir = new URL("../../schemas/", import.meta.url);

let cellValidator: ValidateFunction | undefined;
let portfolioValidator: ValidateFunction | undefined;

export function loadSchema(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(name, schemaDir), "utf8")) as Record<string, unknown>;
}

// The compiled validator for one Cell document (compiled once per process).
export function validateCellShape(doc: unknown): ErrorObject[] {
  if (!cellValidator) {
    const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
    cellValidator = ajv.compile(loadSchema("cell.schema.json"));
  }
  return cellValidator(doc) ? [] : [...(cellValidator.errors ?? [])];
}

export function validatePortfolioShape(doc: unknown): ErrorObject[] {
  if (!portfolioValidator) {
    const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
    portfolioValidator = ajv.compile(loadSchema("portfolio.schema.json"));
  }
  return portfolioValidator(doc) ? [] : [...(portfolioValidator.errors ?? [])];
}
