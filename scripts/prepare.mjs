// npm's prepare (after npm ci / npm install in a clone, and for `npm install -g .`): build dist/
// when the TypeScript compiler is installed (a development checkout). Without it (devDependencies
// left out), an existing dist/ is used as it is; with neither, say what to do.
import { existsSync } from "node:fs";
import { execFileSync } from "node:child_process";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc");
if (existsSync(tsc)) {
  execFileSync("npm", ["run", "build"], { cwd: root, stdio: "inherit" });
} else if (!existsSync(path.join(root, "dist", "cli.js"))) {
  console.error(
    "lazarus: dist/ is not built and TypeScript is not installed: run `npm ci` in this clone first (or install a tarball made by `npm pack`)",
  );
  process.exit(1);
}
