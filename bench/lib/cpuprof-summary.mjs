// Summarise a .cpuprofile (from node --cpu-prof): self time by area (a package under
// node_modules, a directory of dist/, node internals, GC, idle), the top functions by self time,
// and the top functions by total time (self plus what they called).
// Usage: node bench/lib/cpuprof-summary.mjs <file.cpuprofile> [top=15] [--last-ms MS]
// --last-ms MS: only the samples of the profile's last MS milliseconds (say, a benchmark's rounds
// after a long start-up).
import { readFileSync } from "node:fs";

const argv = process.argv.slice(2);
const lastAt = argv.indexOf("--last-ms");
const lastMs = lastAt >= 0 ? Number(argv[lastAt + 1]) : undefined;
const rest = lastAt < 0 ? argv : argv.filter((_, i) => i !== lastAt && i !== lastAt + 1);
const prof = JSON.parse(readFileSync(rest[0], "utf8"));
const top = Number(rest[1] ?? 15);
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const from = lastMs === undefined ? -Infinity : prof.endTime - lastMs * 1000;
const self = new Map();
let t = prof.startTime;
for (let i = 0; i < prof.samples.length; i++) {
  const dt = prof.timeDeltas[i] ?? 0;
  t += dt;
  if (t < from) continue;
  self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + dt);
}
const area = (cf) => {
  const u = cf.url;
  if (!u) return cf.functionName ? `(${cf.functionName})` : "(native)";
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
  if (nm) return nm[1];
  const d = /\/dist\/(.*)\/[^/]+$/.exec(u) ?? /\/dist\/([^/]+)$/.exec(u);
  if (d) return `dist/${d[1]}`;
  if (u.startsWith("node:")) return "node internals";
  return u;
};
const fnKey = (cf) =>
  `${cf.functionName || "(anonymous)"} ${cf.url.replace(/.*node_modules\//, "").replace(/.*\/dist\//, "dist/")}:${cf.lineNumber + 1}`;
const areas = new Map();
const fns = new Map();
const inclusive = new Map();
let total = 0;
for (const [id, us] of self) {
  const n = byId.get(id);
  total += us;
  const a = area(n.callFrame);
  areas.set(a, (areas.get(a) ?? 0) + us);
  fns.set(fnKey(n.callFrame), (fns.get(fnKey(n.callFrame)) ?? 0) + us);
  if (n.callFrame.functionName === "(idle)") continue;
  // Each function on the sample's stack once (recursion counted once).
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const key = fnKey(byId.get(cur).callFrame);
    if (seen.has(key)) continue;
    seen.add(key);
    inclusive.set(key, (inclusive.get(key) ?? 0) + us);
  }
}
const show = (m) =>
  [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, us]) => `${(us / 1000).toFixed(0).padStart(6)} ms ${((100 * us) / total).toFixed(1).padStart(5)} %  ${k}`)
    .join("\n");
console.log(
  `total ${(total / 1000).toFixed(0)} ms sampled${lastMs === undefined ? "" : ` (last ${lastMs} ms)`}\n-- by area --\n${show(areas)}\n-- top functions (self) --\n${show(fns)}\n-- top functions (total: self and callees) --\n${show(inclusive)}`,
);
