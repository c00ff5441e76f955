// Load for the gateway bench: streamed chat completions fired at a URL, either all at the same
// instant (a burst) or kept open (steady: a new call starts as soon as one ends), each timed from
// its request to the first body byte and to the end.
import http from "node:http";

export interface Timing {
  start: number; // performance.now() at the request
  first: number; // ms to the first body byte
  total: number; // ms to the end of the body
}

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024 });
const body = JSON.stringify({ model: "gpt-ok", stream: true, messages: [{ role: "user", content: "hi" }] });

// One streamed call: ms to the first body byte and to the end (a status other than 200 rejects).
export function call(url: string, auth: string): Promise<Timing> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: "POST", agent, headers: { "content-type": "application/json", authorization: `Bearer ${auth}` } },
      (res) => {
        let first = 0;
        res.on("data", () => void (first ||= performance.now() - start));
        res.on("end", () =>
          res.statusCode === 200
            ? resolve({ start, first, total: performance.now() - start })
            : reject(new Error(`status ${res.statusCode}`)),
        );
      },
    );
    req.on("error", (err) => reject(new Error(`${url}: ${err.message}`))); // which path failed
    req.end(body);
  });
}

// n calls fired at the same instant.
export function burst(url: string, auth: string, n: number): Promise<Timing[]> {
  return Promise.all(Array.from({ length: n }, () => call(url, auth)));
}

// n streams kept open for ms: stream i starts at i * rampMs / n (no burst at the start), and each
// starts its next call as soon as one ends, until ms have passed. Returns the calls that started
// after the ramp (the first rampMs: streams still opening) and every call's count.
export async function steady(
  url: string,
  auth: string,
  n: number,
  ms: number,
  rampMs: number,
): Promise<{ timings: Timing[]; calls: number }> {
  const t0 = performance.now();
  const timings: Timing[] = [];
  let calls = 0;
  const loop = async (i: number): Promise<void> => {
    await new Promise((r) => setTimeout(r, (i * rampMs) / n));
    while (performance.now() - t0 < ms) {
      const t = await call(url, auth);
      calls++;
      if (t.start - t0 >= rampMs) timings.push(t);
    }
  };
  await Promise.all(Array.from({ length: n }, (_, i) => loop(i)));
  return { timings, calls };
}

export interface Stats {
  n: number;
  p50: number;
  p90: number;
  p99: number;
}

// Nearest-rank percentiles.
export function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
  return { n: s.length, p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}
