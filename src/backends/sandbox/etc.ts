// The /etc a sandboxed member sees: a copy of the allowed host files in one directory, bound as
// one mount (binding each file costs a mount apiece at every start). Rebuilt when a source changes.
import { cpSync, existsSync, lstatSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ETC_ALLOW, RUN_ROOT } from "./argv.js";

export const ETC_VIEW = `${RUN_ROOT}/etc`;

// Names, sizes and mtimes of the allowed files: what the copy was made from.
function fingerprint(): string {
  return ETC_ALLOW.map((f) => {
    try {
      const st = lstatSync(`/etc/${f}`);
      return `${f}:${st.size}:${st.mtimeMs}:${st.mode}`;
    } catch {
      return `${f}:-`;
    }
  }).join("\n");
}

let checked: string | undefined;

// The directory to bind at /etc, made or refreshed as needed (atomically: built aside, renamed).
export function ensureEtcView(dir = ETC_VIEW): string {
  const fp = fingerprint();
  if (checked === fp && existsSync(dir)) return dir;
  const stamp = path.join(dir, ".lazarus-fingerprint");
  if (existsSync(stamp) && readFileSync(stamp, "utf8") === fp) {
    checked = fp;
    return dir;
  }
  mkdirSync(path.dirname(dir), { recursive: true, mode: 0o755 });
  const tmp = `${dir}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { mode: 0o755 });
  for (const f of ETC_ALLOW) {
    if (!existsSync(`/etc/${f}`) && !lstatSync(`/etc/${f}`, { throwIfNoEntry: false })) continue;
    cpSync(`/etc/${f}`, path.join(tmp, f), { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
  }
  writeFileSync(path.join(tmp, ".lazarus-fingerprint"), fp);
  const old = `${dir}.${process.pid}.old`;
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  rmSync(old, { recursive: true, force: true });
  checked = fp;
  return dir;
}
