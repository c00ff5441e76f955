// Summarise a .cpuprofile (from node --cpu-prof): self time by area (a package under
// node_modules, a directory of dist/, node internals, GC, idle) and the top functions.
// Usage: node bench/lib/cpuprof-summary.mjs <file.cpuprofile> [top=15]
import { readFileSync } from "node:fs";

const prof = JSON.parse(readFileSync(process.argv[2], "utf8"));
const top = Number(process.argv[3] ?? 15);
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const self = new Map();
for (let i = 0; i < prof.samples.length; i++) {
  const dt = prof.timeDeltas[i] ?? 0;
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
const areas = new Map();
const fns = new Map();
let total = 0;
for (const [id, us] of self) {
  const n = byId.get(id);
  total += us;
  const a = area(n.callFrame);
  areas.set(a, (areas.get(a) ?? 0) + us);
  const key = `${n.callFrame.functionName || "(anonymous)"} ${n.callFrame.url.replace(/.*node_modules\//, "").replace(/.*\/dist\//, "dist/")}:${n.callFrame.lineNumber + 1}`;
  fns.set(key, (fns.get(key) ?? 0) + us);
}
const show = (m) => [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, us]) => `${(us / 1000).toFixed(0).padStart(6)} ms ${((100 * us) / total).toFixed(1).padStart(5)} %  ${k}`).join("\n");
console.log(`total ${(total / 1000).toFixed(0)} ms sampled\n-- by area --\n${show(areas)}\n-- top functions (self) --\n${show(fns)}`);
