// The test files' uid bands (uidBand in helpers.ts): cut from the run's LAZARUS_UID_RANGE, apart
// from each other and from the uids kept for tests that use the run's range as it is; and no test
// file sets a uid range of its own by number, which would meet another file's cells again.
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, UID_BANDS, uidBand } from "./helpers.js";

describe("uid bands", () => {
  for (const range of ["299000-299999", "200000-299999"])
    it(`are apart, inside ${range}, above its first 100 uids`, () => {
      const bands = UID_BANDS.map((n) => uidBand(n, range)).sort((a, b) => a.first - b.first);
      const [first, last] = range.split("-").map(Number) as [number, number];
      expect(bands[0]!.first).toBe(first + 100);
      expect(bands.at(-1)!.last).toBeLessThanOrEqual(last);
      for (const [i, b] of bands.entries()) {
        expect(b.last - b.first + 1).toBeGreaterThanOrEqual(10);
        expect(b.range).toBe(`${b.first}-${b.last}`);
        if (i) expect(b.first).toBe(bands[i - 1]!.last + 1);
      }
    });

  it("refuses a range too small for them, saying how large it must be", () => {
    expect(() => uidBand("sandbox/attack", "299000-299300")).toThrow(/too small .*uids at least/);
    expect(() => uidBand("sandbox/attack", "299000")).toThrow(/is not a range/);
  });

  it("are the only uid ranges test files give: none is written as a number", () => {
    const files: string[] = [];
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true }))
        if (e.isDirectory()) walk(path.join(d, e.name));
        else if (/\.(ts|mjs)$/.test(e.name)) files.push(path.join(d, e.name));
    };
    walk(path.join(ROOT, "test"));
    const numbered = /LAZARUS_UID_RANGE\s*[:=]\s*"\d|sandbox(?:Env|Suite)\(\d/;
    // load.test.ts checks a container user against a range (nothing runs as it); service.test.ts
    // writes settings into a service unit's text.
    const pure = ["test/config/load.test.ts", "test/cli/service.test.ts", "test/uid-bands.test.ts"];
    const found = files
      .map((f) => path.relative(ROOT, f))
      .filter((f) => !pure.includes(f) && numbered.test(readFileSync(path.join(ROOT, f), "utf8")));
    expect(found).toEqual([]);
  });
});
