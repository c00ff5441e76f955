// decodeYaml reads plain ASCII without the decoder (a native check, then a one-byte string): the
// text must be exactly what strict UTF-8 decoding gives, for whole buffers and for slices of a
// larger one (as small files are read into node's shared pool), and anything else still goes
// through the strict decoder with its problems at their lines.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeYaml } from "../../src/config/decode.js";

const strict = new TextDecoder("utf-8", { fatal: true });

describe("decodeYaml", () => {
  it("gives what strict UTF-8 decoding gives, for ASCII and other text, whole or sliced", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), fc.nat(40), fc.nat(40), (text, before, after) => {
        const bytes = Buffer.from(text, "utf8");
        const big = Buffer.alloc(before + bytes.length + after, 0x41);
        bytes.copy(big, before);
        const slice = big.subarray(before, before + bytes.length);
        for (const b of [bytes, slice]) {
          const d = decodeYaml(b);
          if ("text" in d) expect(d.text).toBe(strict.decode(b));
          else expect(d.problem).toMatch(/character|NUL|UTF-16/); // a control character, as before
        }
      }),
      { numRuns: 500 },
    );
  });

  it("still drops a byte order mark and refuses bytes that are not UTF-8 at their line", () => {
    expect(decodeYaml(Buffer.from("\ufeffa: 1\n", "utf8"))).toEqual({ text: "a: 1\n" });
    const bad = decodeYaml(Buffer.concat([Buffer.from("a: 1\nb: "), Buffer.from([0xc3, 0x28])]));
    expect(bad).toMatchObject({ line: 2, col: 4, problem: "invalid UTF-8 (a byte sequence that is not a character)" });
    expect(decodeYaml(Buffer.from("a: 1\n\u0007\n"))).toMatchObject({ line: 2, col: 1 });
  });
});
