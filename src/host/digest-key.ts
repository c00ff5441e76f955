// The key that digests credential values (see valuesDigest): 32 random bytes in the state dir,
// which only Lazarus reads. Created on first use by a command that changes state.
import { randomBytes } from "node:crypto";
import { link, mkdir, open, unlink } from "node:fs/promises";
import { spaceError, tempName, writeFully } from "../util/fsx.js";
import path from "node:path";
import { isErrno, LazarusError } from "../util/errors.js";
import { readUntrusted } from "../util/safe-fs.js";

// Where the key lives: in the state dir root, beside the ledger.
export function digestKeyFile(stateRoot: string): string {
  return path.join(stateRoot, "credentials.key");
}

// The key, or undefined when it does not exist and create is false (plan, validate).
export async function credentialDigestKey(stateRoot: string, create: boolean): Promise<Buffer | undefined> {
  const file = digestKeyFile(stateRoot);
  const read = async (): Promise<Buffer | undefined> => {
    const r = await readUntrusted(file, 1024);
    if (r.ok && /^[0-9a-f]{64}\n?$/.test(r.text)) return Buffer.from(r.text.trim(), "hex");
    if (r.ok || !r.missing)
      throw new LazarusError(
        "BAD_KEY",
        `${file} is not a credential digest key (${r.ok ? "unexpected content" : r.reason}); remove it and let Lazarus create a new one`,
      );
    return undefined;
  };
  const existing = await read();
  if (existing || !create) return existing;
  await mkdir(stateRoot, { recursive: true });
  // Written whole to a temp file, then linked into place: the key file never exists half-written
  // (a full disk leaves nothing behind), and of two creators racing, one key wins.
  const tmp = tempName(file);
  try {
    const fh = await open(tmp, "wx", 0o600);
    try {
      await writeFully(fh, Buffer.from(`${randomBytes(32).toString("hex")}\n`));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await link(tmp, file).catch((err: unknown) => {
      if (!isErrno(err, "EEXIST")) throw err;
    });
  } catch (err) {
    throw spaceError(err, file);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  return read();
}
