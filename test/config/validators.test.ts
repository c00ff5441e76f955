// The validators precompiled at build time (src/config/validators.generated.ts) must be current
// and must judge every document exactly as the JSON Schema compiled by Ajv does: same verdict,
// same errors (the diagnostics are built from them).
import { execFile } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { Ajv, type ErrorObject } from "ajv";
import fc from "fast-check";
import { parseAllDocuments } from "yaml";
import { describe, expect, it } from "vitest";
import { loadSchema, validateCellShape, validatePortfolioShape } from "../../src/config/schema.js";

const root = path.resolve(import.meta.dirname, "..", "..");
// The options src/config/schema.ts compiled with before the validators were generated.
const compile = (name: string) =>
  new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(loadSchema(name));
const reference = { cell: compile("cell.schema.json"), portfolio: compile("portfolio.schema.json") };
const generated = { cell: validateCellShape, portfolio: validatePortfolioShape };
type Kind = keyof typeof reference;

function referenceErrors(kind: Kind, doc: unknown): ErrorObject[] {
  const v = reference[kind];
  return v(doc) ? [] : [...(v.errors ?? [])];
}

function agree(kind: Kind, doc: unknown): void {
  const want = referenceErrors(kind, structuredClone(doc));
  expect(generated[kind](structuredClone(doc)), JSON.stringify(doc)).toEqual(want);
}

// Every document of the repository's own YAML files (cells.d/, portfolios/, examples/), by kind.
function repoDocs(): { kind: Kind; doc: Record<string, unknown> }[] {
  const out: { kind: Kind; doc: Record<string, unknown> }[] = [];
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(path.join(dir, e.name)) : /\.ya?ml$/.test(e.name) ? [path.join(dir, e.name)] : [],
    );
  for (const file of ["cells.d", "portfolios", "examples"].flatMap((d) => walk(path.join(root, d)))) {
    for (const d of parseAllDocuments(readFileSync(file, "utf8")) as { toJS(): unknown }[]) {
      const doc = d.toJS() as Record<string, unknown> | null;
      if (doc && (doc.kind === "Cell" || doc.kind === "Portfolio"))
        out.push({ kind: doc.kind === "Cell" ? "cell" : "portfolio", doc });
    }
  }
  return out;
}

// Every path to a value inside a document.
function paths(v: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(v)) return [prefix, ...v.flatMap((x, i) => paths(x, [...prefix, i]))];
  if (v && typeof v === "object") return [prefix, ...Object.entries(v).flatMap(([k, x]) => paths(x, [...prefix, k]))];
  return [prefix];
}

function setAt(doc: unknown, p: (string | number)[], value: unknown, remove = false): unknown {
  const copy = structuredClone(doc) as Record<string | number, unknown>;
  if (p.length === 0) return value;
  let at = copy;
  for (const k of p.slice(0, -1)) at = at[k] as Record<string | number, unknown>;
  const last = p[p.length - 1] as string | number;
  if (remove) {
    if (Array.isArray(at)) at.splice(last as number, 1);
    else delete at[last];
  } else at[last] = value;
  return copy;
}

const BAD_VALUES: unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  1e9,
  "",
  "x",
  "Not A Name!",
  "human:",
  "agent:ok",
  "4h",
  "25h",
  "0 * * * *",
  [],
  [""],
  ["sh"],
  {},
  { x: 1 },
  { file: "a" },
  { env: "A" },
];

describe("precompiled validators", () => {
  it("are current: the generator, run again, writes the same code", async () => {
    await promisify(execFile)("node", [path.join(root, "scripts", "gen-validators.mjs"), "--check"], { cwd: root });
  });

  const docs = repoDocs();

  it("accept the repository's own documents, as the schema does", () => {
    expect(docs.filter((d) => d.kind === "cell").length).toBeGreaterThan(0);
    expect(docs.filter((d) => d.kind === "portfolio").length).toBeGreaterThan(0);
    for (const { kind, doc } of docs) {
      expect(referenceErrors(kind, doc)).toEqual([]);
      agree(kind, doc);
    }
  });

  it("reject every broken variant of them with the schema's errors: each value replaced, each key removed, an unknown key added", () => {
    let rejected = 0;
    for (const { kind, doc } of docs) {
      for (const p of paths(doc)) {
        for (const bad of BAD_VALUES) {
          const variant = setAt(doc, p, bad);
          if (referenceErrors(kind, variant).length > 0) rejected++;
          agree(kind, variant);
        }
        if (p.length > 0) agree(kind, setAt(doc, p, undefined, true));
        if (p.length > 0) agree(kind, setAt(doc, [...p.slice(0, -1), "unknownField"], 1));
      }
    }
    expect(rejected).toBeGreaterThan(1000); // the variants really exercise the error paths
  });

  it("agree on arbitrary values and on cells built from arbitrary parts", () => {
    const anyValue = fc.jsonValue({ maxDepth: 3 });
    const member = fc.record(
      {
        identity: fc.oneof(fc.constantFrom("human:a", "agent:b", "bot:c", "nobody"), fc.string()),
        role: fc.oneof(fc.constantFrom("director", "executor", "observer", "guest", "substitute"), anyValue),
        command: fc.oneof(fc.array(fc.string()), anyValue),
        env: fc.dictionary(fc.string(), fc.oneof(fc.string(), anyValue)),
        restart: anyValue,
        heartbeat: fc.oneof(fc.constantFrom("10s", "1m"), anyValue),
      },
      { requiredKeys: ["identity"] },
    );
    const cell = fc.record(
      {
        apiVersion: fc.oneof(fc.constant("lazarus/v1"), anyValue),
        kind: fc.oneof(fc.constant("Cell"), anyValue),
        metadata: fc.oneof(
          fc.record(
            {
              name: fc.oneof(fc.constantFrom("c1", "a-b"), fc.string()),
              labels: fc.dictionary(fc.string(), fc.oneof(fc.string(), anyValue)),
            },
            { requiredKeys: [] },
          ),
          anyValue,
        ),
        spec: fc.oneof(
          fc.record(
            {
              project: fc.oneof(fc.constant("Org/r#1"), anyValue),
              owner: fc.oneof(fc.constant("human:a"), anyValue),
              ttl: fc.oneof(fc.constantFrom("4h", "1h30m", "90s"), anyValue),
              members: fc.oneof(fc.array(member, { maxLength: 3 }), anyValue),
              resources: anyValue,
              policy: anyValue,
              checkpoint: anyValue,
              credentials: anyValue,
            },
            { requiredKeys: [] },
          ),
          anyValue,
        ),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.oneof(cell, anyValue), (doc) => {
        agree("cell", doc);
        agree("portfolio", doc);
      }),
      { numRuns: 2000 },
    );
  });
});
