// Durations as users write them: 90s, 30m, 4h, 1h30m, 30d.
const UNITS = [
  ["d", 86_400_000],
  ["h", 3_600_000],
  ["m", 60_000],
  ["s", 1_000],
] as const;

const DURATION = /^(?=\d)(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

// Milliseconds for a duration string, or undefined when it is not one.
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text);
  if (!m) return undefined;
  let ms = 0;
  UNITS.forEach(([, size], i) => {
    const part = m[i + 1];
    if (part !== undefined) ms += Number(part) * size;
  });
  return ms;
}

// The shortest duration string for a number of milliseconds (sub-second parts are dropped).
export function formatDuration(ms: number): string {
  if (ms <= 0) return "0s";
  let rest = Math.floor(ms / 1000) * 1000;
  let out = "";
  for (const [unit, size] of UNITS) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out || "0s";
}
