// The first executable file named cmd in the PATH, then in the given fallback dirs.
import { accessSync, constants } from "node:fs";
import path from "node:path";

export function which(
  cmd: string,
  searchPath: string | undefined,
  fallback: readonly string[] = ["/usr/local/bin", "/usr/bin", "/bin"],
): string | undefined {
  for (const dir of (searchPath ?? "").split(":").concat(fallback)) {
    if (!dir) continue;
    const p = path.join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}
