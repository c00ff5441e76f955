// Build step: copy the helpers written in other languages (src/**/*.pl, *.mjs) beside the compiled
// JavaScript in dist/, keeping their paths, so the package ships them where the code looks.
import { chmodSync, copyFileSync, mkdirSync, readdirSync } from "node:fs";
import path from "node:path";

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : e.name.endsWith(".pl") || e.name.endsWith(".mjs") ? [p] : [];
  });
}

for (const file of walk("src")) {
  const out = path.join("dist", path.relative("src", file));
  mkdirSync(path.dirname(out), { recursive: true });
  copyFileSync(file, out);
}
chmodSync("dist/cli.js", 0o755);
