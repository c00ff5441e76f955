import { describe, expect, it } from "vitest";
import { formatDuration, parseDuration } from "../../src/config/durations.js";

describe("durations", () => {
  it.each([
    ["90s", 90_000],
    ["30m", 1_800_000],
    ["4h", 14_400_000],
    ["1h30m", 5_400_000],
    ["30d", 2_592_000_000],
    ["1d2h3m4s", 93_784_000],
  ])("parses %s", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
    expect(parseDuration(formatDuration(ms))).toBe(ms);
  });

  it.each(["", "4", "h", "4x", "1m1h", "-1h", "1.5h", " 4h"])("rejects %j", (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });

  it("formats the shortest form", () => {
    expect(formatDuration(5_400_000)).toBe("1h30m");
    expect(formatDuration(86_400_000)).toBe("1d");
  });
});
