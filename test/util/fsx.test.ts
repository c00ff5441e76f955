// The atomic writer: exact mode, owner kept, no temp file left, no per-write signal handlers.
import { chownSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { TEMP_RE, syncDir, tempName, writeJsonAtomic, writeTextAtomic } from "../../src/util/fsx.js";
import { cleanup, tempDir } from "../helpers.js";

let dir: string;
beforeEach(() => {
  dir = tempDir();
});
afterEach(() => cleanup(dir));

describe("the atomic writer", () => {
  it("lands every file when many writers in one directory share its fsyncs", async () => {
    await Promise.all(Array.from({ length: 50 }, (_, i) => writeJsonAtomic(path.join(dir, `f${i}.json`), { i })));
    expect(readdirSync(dir).sort()).toEqual(Array.from({ length: 50 }, (_, i) => `f${i}.json`).sort());
    for (let i = 0; i < 50; i++) expect(JSON.parse(readFileSync(path.join(dir, `f${i}.json`), "utf8"))).toEqual({ i });
  });

  it("reports a directory fsync that fails to every caller that shared it", async () => {
    const gone = path.join(dir, "missing");
    const calls = await Promise.allSettled([syncDir(gone), syncDir(gone), syncDir(gone)]);
    expect(calls.map((c) => c.status)).toEqual(["rejected", "rejected", "rejected"]);
    await expect(syncDir(dir)).resolves.toBeUndefined();
  });

  it("leaves only the file, with the last write's contents, after concurrent writes", async () => {
    const file = path.join(dir, "cell.json");
    await Promise.all(Array.from({ length: 20 }, (_, i) => writeJsonAtomic(file, { i })));
    expect(readdirSync(dir)).toEqual(["cell.json"]);
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ i: 19 });
  });

  it("sets the mode it is given whatever the umask, and keeps an existing file's owner", async () => {
    const file = path.join(dir, "credentials.json");
    const old = process.umask(0o077);
    try {
      await writeTextAtomic(file, "a", 0o644);
    } finally {
      process.umask(old);
    }
    expect(statSync(file).mode & 0o777).toBe(0o644);
    if (process.getuid?.() !== 0) return;
    chownSync(file, 4321, 4321);
    await writeJsonAtomic(file, { b: 1 }, 0o600);
    expect(statSync(file)).toMatchObject({ uid: 4321, gid: 4321 });
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it("names its temp files <file>.<pid>.<12 hex>.tmp, which the sweep matches", () => {
    const name = path.basename(tempName(path.join(dir, "ledger.head.json")));
    expect(TEMP_RE.exec(name)?.slice(1, 3)).toEqual(["ledger.head.json", String(process.pid)]);
  });

  it("installs no signal handlers for a write", async () => {
    const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
    const before = signals.map((s) => process.listenerCount(s));
    const writing = writeJsonAtomic(path.join(dir, "x.json"), { x: 1 });
    expect(signals.map((s) => process.listenerCount(s))).toEqual(before);
    await writing;
  });

  it("removes its temp file when the write fails", async () => {
    mkdirSync(path.join(dir, "target.json")); // rename onto a directory fails
    writeFileSync(path.join(dir, "keep"), "");
    await expect(writeJsonAtomic(path.join(dir, "target.json"), {})).rejects.toThrow();
    expect(readdirSync(dir).sort()).toEqual(["keep", "target.json"]);
  });
});
