// The JSON Schemas in schemas/ are the single source of the desired-state shape. They are compiled
// at build time into validators.generated.ts (scripts/gen-validators.mjs, Ajv standalone code),
// so loading neither imports Ajv's compiler nor compiles a schema; test/config/validators.test.ts
// proves the generated code current and in agreement with the schemas.
import { readFileSync } from "node:fs";
import type { ErrorObject } from "ajv";
import { validateCell, validatePortfolio } from "./validators.generated.js";

const schemaDir = new URL("../../schemas/", import.meta.url);

type Validator = ((doc: unknown) => boolean) & { errors?: ErrorObject[] | null };

export function loadSchema(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(name, schemaDir), "utf8")) as Record<string, unknown>;
}

// The names spec.backend may take (the schema's enum, which test/backends/registry.test.ts holds
// to the registry's rows and its retired names). Read once.
let backendEnum: string[] | undefined;
export function schemaBackends(): string[] {
  if (!backendEnum) {
    const spec = (
      loadSchema("cell.schema.json").properties as { spec: { properties: { backend: { enum: string[] } } } }
    ).spec;
    backendEnum = [...spec.properties.backend.enum];
  }
  return backendEnum;
}

function errorsOf(validate: Validator, doc: unknown): ErrorObject[] {
  return validate(doc) ? [] : [...(validate.errors ?? [])];
}

// The shape errors of one Cell document (none when it is valid).
export function validateCellShape(doc: unknown): ErrorObject[] {
  return errorsOf(validateCell as Validator, doc);
}

// The shape errors of one Portfolio document.
export function validatePortfolioShape(doc: unknown): ErrorObject[] {
  return errorsOf(validatePortfolio as Validator, doc);
}
