// canonicalJson is written out by hand for speed; the digests already recorded on disk (closed
// cells, the ledger's hash chain) require it to give exactly what the original definition gave.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalJson } from "../../src/config/digest.js";

// The original definition: JSON.stringify with a replacer that sorts every object's keys.
const reference = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );

describe("canonicalJson", () => {
  it("gives exactly the original definition's text on arbitrary values", () => {
    const key = fc.oneof(fc.string(), fc.constantFrom("0", "1", "2", "10", "9", "01", "-1", "1.5", "4294967294", "4294967295", "__proto__", "a", "B", "é", "\u{1F600}", ""));
    const leaf = fc.oneof(fc.string(), fc.double(), fc.integer(), fc.boolean(), fc.constant(null), fc.constant(undefined), fc.date({ noInvalidDate: true }), fc.constant(() => 1));
    const value = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: "small" }, leaf, fc.array(tie("node"), { maxLength: 4 }), fc.dictionary(key, tie("node"), { maxKeys: 6 })),
    })).node;
    fc.assert(
      fc.property(value, (v) => {
        expect(canonicalJson(v)).toBe(reference(v));
      }),
      { numRuns: 5000 },
    );
  });

  it("sorts keys at every depth, index-like keys first as objects order them", () => {
    const v = { b: 1, a: [{ z: 1, y: undefined, x: null }], 10: "ten", 9: "nine", "01": 0 };
    expect(canonicalJson(v)).toBe('{"9":"nine","10":"ten","01":0,"a":[{"x":null,"z":1}],"b":1}');
    expect(canonicalJson(v)).toBe(reference(v));
    expect(canonicalJson([undefined, () => 1, Number.NaN, -0, Number.POSITIVE_INFINITY])).toBe("[null,null,null,0,null]");
  });
});
