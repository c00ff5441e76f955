// Hand one path Lazarus made to a cell's uid (its owner and mode), safely.
import { chmod, lchown, lstat } from "node:fs/promises";

// Hand one path Lazarus made to the cell's uid. Never recursive and never through a symlink:
// whatever lies below was written by the cell's uid itself (or restored as it).
export async function handOver(p: string, uid: number, gid: number, mode?: number): Promise<void> {
  const st = await lstat(p).catch(() => undefined);
  if (!st || st.isSymbolicLink() || (st.isFile() && st.nlink > 1)) return;
  if (st.uid !== uid || st.gid !== gid) await lchown(p, uid, gid);
  if (mode !== undefined && (st.mode & 0o7777) !== mode) await chmod(p, mode);
}
