// Times as Lazarus writes and reads them.

// Full ISO-8601, for data (records, actions, ledger).
export const iso = (ms: number): string => new Date(ms).toISOString();

// ISO-8601 without zero milliseconds, for reasons people read.
export const short = (ms: number): string => iso(ms).replace(/\.000Z$/, "Z");

// Milliseconds of a recorded time; NaN when there is none.
export const parseTime = (time: string | undefined): number => (time ? Date.parse(time) : Number.NaN);
