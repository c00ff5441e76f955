// Per-cell uids, claimed from the operator's range. A claim is a file uids/<uid> created with
// O_EXCL under the state dir, naming the cell incarnation that holds it, so two cells never share
// a uid and a create that crashed after claiming finds its own claim again.
import { readFileSync } from "node:fs";
import { mkdir, open, readFile, readdir, rm } from "node:fs/promises";
import path from "node:path";
import { LazarusError, isErrno } from "../../util/errors.js";

// uids that belong to accounts of this host (never handed to a cell).
function accountUids(): Set<number> {
  const out = new Set<number>();
  try {
    for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
      const uid = Number(line.split(":")[2]);
      if (Number.isInteger(uid)) out.add(uid);
    }
  } catch {
    // no passwd: nothing to avoid
  }
  return out;
}

const owner = (cell: string, incarnation: string): string => `${cell} ${incarnation}\n`;

// The uid this cell incarnation holds, claiming the lowest free one in range if it has none.
export async function claimUid(
  dir: string,
  range: { first: number; last: number },
  cell: string,
  incarnation: string,
): Promise<number> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const taken = new Set<number>();
  for (const e of await readdir(dir)) {
    if (!/^\d+$/.test(e)) continue;
    const text = await readFile(path.join(dir, e), "utf8").catch(() => "");
    if (text === owner(cell, incarnation)) return Number(e);
    taken.add(Number(e));
  }
  const accounts = accountUids();
  for (let uid = range.first; uid <= range.last; uid++) {
    if (taken.has(uid) || accounts.has(uid)) continue;
    try {
      const fh = await open(path.join(dir, String(uid)), "wx", 0o600);
      try {
        await fh.writeFile(owner(cell, incarnation));
        await fh.sync();
      } finally {
        await fh.close();
      }
      return uid;
    } catch (err) {
      if (isErrno(err, "EEXIST")) continue;
      throw err;
    }
  }
  throw new LazarusError(
    "NO_FREE_UID",
    `no free uid for cell ${cell} in ${range.first}-${range.last}; scrub closed cells or widen LAZARUS_UID_RANGE`,
  );
}

// Give a uid back once nothing of the cell is left (after scrub).
export async function releaseUid(dir: string, uid: number, cell: string, incarnation: string): Promise<void> {
  const file = path.join(dir, String(uid));
  const text = await readFile(file, "utf8").catch(() => "");
  if (text === owner(cell, incarnation)) await rm(file, { force: true });
}
