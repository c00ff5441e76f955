// YAML documents with source positions, checked against a JSON Schema: the shared first step of
// loading cells.d/ and portfolios/. Pure: no I/O.
import { isAlias, isMap, isPair, isScalar, isSeq, visit, type Document, type Node } from "yaml";
import type { ErrorObject } from "ajv";
import type { Diagnostic } from "./diagnostics.js";
import type { SourcePos } from "./types.js";
import { parseYamlStream, type Pos } from "./yaml-stream.js";

export type At = (p: (string | number)[]) => SourcePos;

// At most this many alias expansions per document (a "billion laughs" stops here).
export const MAX_ALIAS_COUNT = 100;

export interface ParsedDoc {
  value: unknown;
  at: At;
}

// Parse every document of a file and check each against a schema; yields the valid ones with a
// way to find a path's source position (to each as soon as it is checked, when given: the caller
// then keeps only what it needs of the document, and the syntax tree can go). tooDeep: the file
// nests too deep, and its one diagnostic is all there is (drop what each was given). Pure: no I/O.
export function parseDocs(
  file: string,
  text: string,
  validate: (v: unknown) => ErrorObject[],
  schemaName: string,
  each?: (doc: ParsedDoc) => void,
): { docs: ParsedDoc[]; diagnostics: Diagnostic[]; tooDeep: boolean } {
  const docs: ParsedDoc[] = [];
  const shape: Diagnostic[] = []; // after the YAML diagnostics, as they always came
  const strings = new Map<string, string>();
  const check = (doc: Document.Parsed, pos: Pos): void => {
    let value = plainValue(doc.contents, strings);
    if (value === NOT_PLAIN) {
      try {
        value = own(doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }), strings);
      } catch (e) {
        shape.push({
          severity: "error",
          file,
          ...pos(firstAlias(doc)?.range?.[0]),
          message: `YAML aliases expand too much (${e instanceof Error ? e.message : String(e)})`,
          hint: `write the values out, or use at most ${MAX_ALIAS_COUNT} alias expansions`,
        });
        return;
      }
    }
    if (value === null || value === undefined) return; // an empty document, e.g. a trailing ---
    const shapeErrors = validate(value);
    for (const e of shapeErrors) shape.push(shapeDiagnostic(file, doc, e, pos, schemaName));
    if (shapeErrors.length > 0) return;
    const parsed: ParsedDoc = { value, at: (p) => ({ file, ...pos(nodeAt(doc, p)?.range?.[0]) }) };
    if (each) each(parsed);
    else docs.push(parsed);
  };
  const stream = parseYamlStream(file, text, check);
  if (stream.tooDeep) return { docs: [], diagnostics: stream.diagnostics, tooDeep: true };
  return { docs, diagnostics: [...stream.diagnostics, ...shape], tooDeep: false };
}

// What plainValue cannot convert itself; the document then goes through yaml's own toJS.
const NOT_PLAIN = Symbol("not plain");

// The JS value of a document made only of mappings with string keys, sequences and scalars (every
// document of a usual config), with its strings owned (see own): what doc.toJS() and own() give,
// in one walk and without toJS's per-node bookkeeping of anchors. Anything else (an alias, a pair
// inside a sequence, a scalar whose value is not a primitive, a key that is not a string) gives
// NOT_PLAIN, and yaml's toJS does the whole document (test/config/documents.test.ts compares them).
function plainValue(node: unknown, strings: Map<string, string>): unknown {
  if (node === null) return null;
  if (isScalar(node)) {
    const v = node.value;
    if (typeof v === "string") return ownString(v, strings);
    return v !== null && typeof v === "object" ? NOT_PLAIN : v;
  }
  if (isMap(node)) {
    const out: Record<string, unknown> = {};
    for (const pair of node.items) {
      const k = pair.key;
      if (!isScalar(k) || (typeof k.value !== "string" && k.value !== null)) return NOT_PLAIN;
      const key = k.value === null ? "" : (k.value as string);
      const v = plainValue(pair.value, strings);
      if (v === NOT_PLAIN) return NOT_PLAIN;
      // As yaml does: a key the object already has (a repeat, or an inherited name such as
      // __proto__ or toString) becomes an own property, never a prototype change.
      if (key in out)
        Object.defineProperty(out, key, { value: v, writable: true, enumerable: true, configurable: true });
      else out[key] = v;
    }
    return out;
  }
  if (isSeq(node)) {
    const out: unknown[] = [];
    for (const item of node.items) {
      if (isPair(item)) return NOT_PLAIN;
      const v = plainValue(item, strings);
      if (v === NOT_PLAIN) return NOT_PLAIN;
      out.push(v);
    }
    return out;
  }
  return NOT_PLAIN;
}

// One copy per distinct string of the file (see own).
function ownString(value: string, strings: Map<string, string>): string {
  let s = strings.get(value);
  if (s === undefined) {
    // A fresh flat string, lone surrogates kept. V8 copies a substring or concatenation shorter
    // than 13 characters anyway (only longer ones are slices or cons strings of the text), so a
    // short one is kept as it is.
    s = value.length < 13 ? value : (JSON.parse(JSON.stringify(value)) as string);
    strings.set(s, s);
  }
  return s;
}

// A value whose strings are copies, one per distinct string of the file. The parser's strings are
// slices of the file's text, and one kept slice keeps the whole text alive: the daemon holds every
// declared cell for as long as it runs, and should not hold every file's text besides.
function own(value: unknown, strings: Map<string, string>): unknown {
  if (typeof value === "string") return ownString(value, strings);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = own(value[i], strings);
    return value;
  }
  if (value !== null && typeof value === "object") {
    const o = value as Record<string, unknown>;
    for (const k of Object.keys(o)) o[k] = own(o[k], strings);
  }
  return value;
}

// The first alias node of a document, for the position of an alias problem.
function firstAlias(doc: Document): Node | undefined {
  let found: Node | undefined;
  visit(doc, (_key, node) => {
    if (isAlias(node)) {
      found = node;
      return visit.BREAK;
    }
    return undefined;
  });
  return found;
}

// The YAML node at a JSON path, or the deepest ancestor that exists.
function nodeAt(doc: Document, p: (string | number)[]): Node | undefined {
  for (let n = p.length; n >= 0; n--) {
    const node = doc.getIn(p.slice(0, n), true);
    if (node && typeof node === "object" && "range" in node) return node as Node;
  }
  return undefined;
}

// The key node of `key` inside the map at path p (for unknown fields).
function keyNodeAt(doc: Document, p: (string | number)[], key: string): Node | undefined {
  const parent = p.length === 0 ? doc.contents : doc.getIn(p, true);
  if (!isMap(parent)) return undefined;
  for (const item of parent.items) {
    if (isPair(item) && isScalar(item.key) && String(item.key.value) === key) return item.key;
  }
  return undefined;
}

function pointerToPath(pointer: string): (string | number)[] {
  if (!pointer) return [];
  return pointer
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function fieldName(p: (string | number)[]): string {
  return p.reduce<string>(
    (acc, part) => (typeof part === "number" ? `${acc}[${part}]` : acc ? `${acc}.${part}` : part),
    "",
  );
}

function shapeDiagnostic(
  file: string,
  doc: Document,
  e: ErrorObject,
  pos: (offset: number | undefined) => { line: number; col: number },
  schemaName: string,
): Diagnostic {
  const p = pointerToPath(e.instancePath);
  const params = e.params as Record<string, unknown>;
  const got = (): string => `got ${JSON.stringify(doc.getIn(p))}`;
  // A diagnostic at the node of path p (or at `node` when given).
  const at = (field: string, message: string, hint: string, node?: Node): Diagnostic => ({
    severity: "error",
    file,
    ...pos((node ?? nodeAt(doc, p))?.range?.[0]),
    field,
    message,
    hint,
  });
  switch (e.keyword) {
    case "additionalProperties": {
      const key = String(params.additionalProperty);
      return at(
        fieldName([...p, key]),
        `unknown field "${key}"`,
        `remove it or check its spelling against schemas/${schemaName}`,
        keyNodeAt(doc, p, key),
      );
    }
    case "required": {
      const missing = String(params.missingProperty);
      return at(fieldName([...p, missing]), `missing required field "${missing}"`, "add it");
    }
    case "enum":
      return at(fieldName(p), `must be one of ${(params.allowedValues as unknown[]).join(", ")}`, got());
    case "const":
      return at(fieldName(p), `must be ${JSON.stringify(params.allowedValue)}`, got());
    case "pattern":
      return at(fieldName(p), `${JSON.stringify(doc.getIn(p))} is not valid`, patternHint(e.schemaPath, p, schemaName));
    case "minItems":
    case "minLength": {
      const isCommand = p.includes("command");
      const what =
        e.keyword === "minItems"
          ? `must have at least ${String(params.limit)} item${params.limit === 1 ? "" : "s"}`
          : "must not be empty";
      return at(
        fieldName(p),
        isCommand ? `${what}: a command needs the program to run` : what,
        isCommand ? 'name the program first, e.g. command: ["node", "./agents/a.mjs"], or remove command' : got(),
      );
    }
    case "propertyNames":
      return at(fieldName(p), "has an invalid key", "keys must look like environment variable names (A-Z, 0-9, _)");
    default:
      return at(fieldName(p) || "(document)", e.message ?? e.keyword, `see schemas/${schemaName}`);
  }
}

// What a value of this pattern looks like, known from the schema definition the pattern is in.
function patternHint(schemaPath: string, p: (string | number)[], schemaName: string): string {
  if (schemaPath.startsWith("#/definitions/duration")) return "use a duration such as 90s, 30m, 4h, 1h30m or 30d";
  if (schemaPath.startsWith("#/definitions/identity")) return "use <agent|bot|human>:<name>, e.g. agent:allegro";
  if (p[p.length - 1] === "name" || p[p.length - 1] === "portfolio")
    return "use a DNS label: lowercase letters, digits and '-', at most 63 characters";
  if (p.join(".") === "spec.push.branch")
    return "use a git branch name such as feature/login: letters, digits, . _ - and /, no .., //, @{ or a leading - . /";
  return `see schemas/${schemaName}`;
}
