// recentlyComputed: a host fact read once per key while it is fresh, read again once it is not.
import { describe, expect, it } from "vitest";
import { recentlyComputed } from "../../src/util/memo.js";

describe("recentlyComputed", () => {
  it("computes once per key while fresh, and again for another key, when stale, or past max keys", () => {
    let calls = 0;
    const compute = (v: string) => () => {
      calls++;
      return v;
    };
    const fresh = recentlyComputed<string, string>(60_000, 2);
    expect([fresh("a", compute("A")), fresh("a", compute("X")), fresh("b", compute("B"))]).toEqual(["A", "A", "B"]);
    expect(calls).toBe(2);
    fresh("c", compute("C")); // a third key: the kept ones are dropped
    expect(fresh("a", compute("A2"))).toBe("A2");
    const stale = recentlyComputed<string, string>(0);
    expect([stale("a", compute("1")), stale("a", compute("2"))]).toEqual(["1", "2"]); // never fresh
  });
});
