// Copy a tree a member could have written into (a cell's logs and checkpoints, to the archive):
// regular files and directories only. Symbolic links, FIFOs, sockets and devices are skipped and
// named; nothing is followed, nothing blocks.
import { constants, createWriteStream } from "node:fs";
import { lstat, mkdir, open, readdir } from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { fileKind } from "./safe-fs.js";

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY } = constants;

// Copy one regular file; returns why it was skipped, or undefined when copied.
async function copyFile(from: string, to: string): Promise<string | undefined> {
  let fh;
  try {
    fh = await open(from, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  } catch (err) {
    return `cannot be opened (${(err as NodeJS.ErrnoException).code})`;
  }
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close();
    return `is a ${fileKind(st)}`;
  }
  await pipeline(fh.createReadStream(), createWriteStream(to, { flags: "wx", mode: st.mode & 0o777 }));
  return undefined;
}

// Copy from (a file or directory) to `to`. Returns what was skipped, as "path: why".
export async function copyRegularTree(from: string, to: string): Promise<string[]> {
  const skipped: string[] = [];
  const visit = async (src: string, dst: string): Promise<void> => {
    const st = await lstat(src).catch(() => undefined);
    if (!st) return; // gone meanwhile
    if (st.isDirectory()) {
      await mkdir(dst, { recursive: true, mode: st.mode & 0o777 });
      for (const e of (await readdir(src)).sort()) await visit(path.join(src, e), path.join(dst, e));
    } else if (st.isFile()) {
      const why = await copyFile(src, dst);
      if (why) skipped.push(`${src}: ${why}`);
    } else skipped.push(`${src}: is a ${fileKind(st)}`);
  };
  await visit(from, to);
  return skipped;
}
