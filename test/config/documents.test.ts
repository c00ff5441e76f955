// parseDocs converts a usual document to JS itself (plainValue) instead of through yaml's toJS; the
// values must be exactly those of toJS, key order, own properties and number types included.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { parseDocs } from "../../src/config/documents.js";
import { parseYamlStream } from "../../src/config/yaml-stream.js";

// Every value, prototype and own key (in order) spelled out, numbers with their exact value.
function shape(v: unknown): unknown {
  if (typeof v === "number") return `number:${Object.is(v, -0) ? "-0" : String(v)}`;
  if (Array.isArray(v)) return { array: v.map(shape) };
  if (v !== null && typeof v === "object") {
    return {
      proto: Object.getPrototypeOf(v) === Object.prototype ? "Object" : String(Object.getPrototypeOf(v)),
      entries: Object.getOwnPropertyNames(v).map((k) => [k, shape((v as Record<string, unknown>)[k])]),
    };
  }
  return v === undefined ? "undefined" : v;
}

// As the cell loader takes them (each document handed over as it is parsed), and as returned.
const ours = (text: string): unknown[] => {
  const streamed: unknown[] = [];
  const { docs } = parseDocs(
    "a.yaml",
    text,
    () => [],
    "cell.schema.json",
    (d) => streamed.push(shape(d.value)),
  );
  expect(docs).toEqual([]);
  expect(parseDocs("a.yaml", text, () => [], "cell.schema.json").docs.map((d) => shape(d.value))).toEqual(streamed);
  return streamed;
};
const theirs = (text: string): unknown[] =>
  parseYamlStream("a.yaml", text)
    .docs.map((d) => d.toJS({ maxAliasCount: 100 }) as unknown)
    .filter((v) => v !== null && v !== undefined)
    .map(shape);

describe("parseDocs values", () => {
  it("are yaml's toJS values for arbitrary documents in every style", () => {
    const key = fc.oneof(
      fc.string(),
      fc.constantFrom(
        "__proto__",
        "toString",
        "constructor",
        "0",
        "1",
        "10",
        "",
        "-",
        "true",
        "null",
        "1e3",
        "0x1F",
        "<<",
      ),
    );
    const leaf = fc.oneof(
      fc.string(),
      fc.double(),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.constantFrom(
        "0x1F",
        "0o17",
        ".inf",
        "-.inf",
        ".nan",
        "1e3",
        "~",
        "yes",
        "No",
        "'quoted'",
        "a: b",
        "- x",
        "#c",
      ),
    );
    const value = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: "small" },
        leaf,
        fc.array(tie("node"), { maxLength: 4 }),
        fc.dictionary(key, tie("node"), { maxKeys: 5 }),
      ),
    })).node;
    const style = fc.record({
      flow: fc.boolean(),
      quote: fc.constantFrom("PLAIN", "QUOTE_DOUBLE", "QUOTE_SINGLE", "BLOCK_LITERAL"),
      docs: fc.integer({ min: 1, max: 3 }),
    });
    fc.assert(
      fc.property(fc.array(value, { minLength: 1, maxLength: 3 }), style, (values, st) => {
        const text = values
          .slice(0, st.docs)
          .map((v) =>
            stringify(v, {
              collectionStyle: st.flow ? "flow" : "block",
              defaultStringType: st.quote as "PLAIN",
              defaultKeyType: "PLAIN",
            }),
          )
          .join("---\n");
        expect(ours(text)).toEqual(theirs(text));
      }),
      { numRuns: 1000 },
    );
  });

  it.each([
    ["keys named like Object's properties", "__proto__: {a: 1}\ntoString: x\nconstructor: [1]\nhasOwnProperty: null\n"],
    ["an empty key and empty values", "? \n: v\nk:\nl: ~\n"],
    ["a pair inside a flow sequence", "a: [b: 1, c]\n"],
    ["anchors without aliases", "a: &x {b: 1}\nc: &y [1, 2]\nd: &z s\n"],
    ["aliases", "a: &x {b: 1}\nc: *x\nd: [*x, *x]\n"],
    ["numbers of every notation", "a: [0x1F, 0o17, 1e3, .inf, -.inf, .nan, -0, 007, 1_000, +1]\n"],
    ["block scalars", "a: |\n  x\n  y\nb: >-\n  p\n  q\n"],
    ["several documents, one empty", "a: 1\n---\n---\n- x\n"],
    ["a merge key (an ordinary key here)", "<<: {a: 1}\nb: 2\n"],
  ])("are yaml's toJS values for %s", (_what, text) => {
    expect(ours(text)).toEqual(theirs(text));
    expect(ours(text).length).toBeGreaterThan(0);
  });
});
