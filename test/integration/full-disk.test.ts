// A full disk (a real 2 MiB tmpfs): appends and applies fail with one clear line, leave no torn
// ledger line and no empty lock, and converge once space returns.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Ledger, verifyLedger } from "../../src/ledger/ledger.js";
import { appendLine } from "../../src/util/fsx.js";
import { cellYaml, cleanup, configDir, lazarus, tempDir } from "../helpers.js";

const mnt = tempDir("lazarus-tmpfs-");
let skipReason = "";
try {
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt], { stdio: "pipe" });
} catch (e) {
  skipReason = `cannot mount a tmpfs here (${String((e as { stderr?: Buffer }).stderr ?? e).trim()}); the full-disk tests are skipped`;
  console.log(skipReason);
}
const filler = path.join(mnt, "filler");

afterAll(() => {
  if (!skipReason) {
    cleanup(...[path.join(mnt, "state")].filter(existsSync));
    try {
      execFileSync("umount", [mnt], { stdio: "pipe" });
    } catch {
      execFileSync("umount", ["-l", mnt], { stdio: "pipe" });
    }
  }
  rmSync(mnt, { recursive: true, force: true });
});

// Fill the tmpfs so that about `leave` bytes stay free.
function fill(leave: number): void {
  rmSync(filler, { force: true });
  const st = statfsSync(mnt);
  const free = st.bavail * st.bsize - leave;
  if (free > 0) {
    try {
      writeFileSync(filler, Buffer.alloc(free));
    } catch {
      // full already: what was written stays
    }
  }
}

describe.skipIf(skipReason !== "")("a full disk", () => {
  it("cuts a short write back: a line larger than the space left is not appended at all", async () => {
    const file = path.join(mnt, "log.jsonl");
    writeFileSync(file, "{}\n");
    fill(2 * 4096);
    await expect(appendLine(file, JSON.stringify({ blob: "x".repeat(5 * 4096) }))).rejects.toThrow(
      `no space left on device while writing ${file}; free space and run again`,
    );
    expect(readFileSync(file, "utf8")).toBe("{}\n");
    rmSync(filler);
    await appendLine(file, "{}");
    expect(readFileSync(file, "utf8")).toBe("{}\n{}\n");
    rmSync(file);
  });

  it("never acknowledges a torn ledger line; the ledger verifies and goes on once space returns", async () => {
    const dir = path.join(mnt, "ledger");
    mkdirSync(dir);
    const file = path.join(dir, "ledger.jsonl");
    const head = path.join(dir, "ledger.head.json");
    const ledger = new Ledger(file, head);
    fill(6 * 4096);
    const details = { blob: "x".repeat(1500) }; // lines cross page boundaries
    let ok = 0;
    let failure: unknown;
    for (let i = 0; i < 100 && !failure; i++) {
      try {
        await ledger.append({
          time: "2026-11-25T00:00:00Z",
          cell: "c",
          action: "create",
          reason: `entry ${i}`,
          details,
        });
        ok++;
      } catch (e) {
        failure = e;
      }
    }
    expect(String(failure)).toMatch(/no space left on device while writing .*ledger.*; free space and run again/);
    expect(readFileSync(file, "utf8").endsWith("\n")).toBe(true);
    expect(await verifyLedger(file, head)).toEqual({ ok: true, entries: ok });
    await expect(
      ledger.append({ time: "2026-11-25T00:00:00Z", cell: "c", action: "create", reason: "still full", details }),
    ).rejects.toThrow("no space left on device");
    expect(await verifyLedger(file, head)).toEqual({ ok: true, entries: ok });
    rmSync(filler);
    await ledger.append({ time: "2026-11-25T00:00:00Z", cell: "c", action: "create", reason: "space again", details });
    expect(await verifyLedger(file, head)).toEqual({ ok: true, entries: ok + 1 });
    rmSync(dir, { recursive: true });
  });

  it("leaves no .staging-* directory (nor its empty record and manifest) when a create runs out of space", async () => {
    const state = path.join(mnt, "state-staging");
    const config = configDir({
      "cells.d/full.yaml": cellYaml({
        name: "full",
        members: [
          { identity: "human:a", role: "director" },
          { identity: "human:b", role: "observer" },
        ],
      }),
    });
    try {
      const run = (...args: string[]) => lazarus([...args, "--config", config, "--state-dir", state]);
      mkdirSync(state);
      let failures = 0;
      for (const pages of [0, 1, 2, 3, 4, 5, 6, 8]) {
        rmSync(path.join(state, "cells"), { recursive: true, force: true }); // each run creates the cell anew
        fill(pages * 4096);
        const r = await run("apply", "--yes");
        if (r.exitCode !== 0) failures++;
        const left = existsSync(path.join(state, "cells"))
          ? readdirSync(path.join(state, "cells")).filter((n) => n.startsWith(".staging-"))
          : [];
        expect(left, `free ${pages} pages: ${r.stdout}${r.stderr}`).toEqual([]);
        rmSync(filler, { force: true });
      }
      expect(failures).toBeGreaterThan(0);
    } finally {
      cleanup(config);
      rmSync(state, { recursive: true, force: true });
    }
  }, 60_000);

  it("fails apply with one clear line at any fill level, leaves no lock, and converges after", async () => {
    const state = path.join(mnt, "state");
    const config = configDir({
      "cells.d/full.yaml": cellYaml({
        name: "full",
        members: [
          { identity: "human:a", role: "director" },
          { identity: "human:b", role: "observer" },
        ],
      }),
    });
    try {
      const run = (...args: string[]) => lazarus([...args, "--config", config, "--state-dir", state]);
      mkdirSync(state);
      let failures = 0;
      for (const pages of [0, 1, 2, 3, 5, 8]) {
        fill(pages * 4096);
        const r = await run("apply", "--yes");
        if (r.exitCode !== 0) {
          failures++;
          expect(r.stdout + r.stderr, `free ${pages} pages`).toContain("no space left on device while writing");
          expect(r.stderr, `free ${pages} pages`).not.toMatch(/\n\s+at /); // no stack trace
        }
        expect(existsSync(path.join(state, "lazarus.lock")), `lock left at ${pages} free pages`).toBe(false);
        rmSync(filler, { force: true });
        expect(
          await verifyLedger(path.join(state, "ledger.jsonl"), path.join(state, "ledger.head.json")),
          `${pages} free pages`,
        ).toMatchObject({ ok: true });
      }
      expect(failures).toBeGreaterThan(0);
      const again = await run("apply", "--yes");
      expect(again.exitCode, again.stdout + again.stderr).toBe(0);
      const p = await run("plan", "--detailed-exitcode");
      expect(p.exitCode, p.stdout + p.stderr).toBe(0);
      expect((await run("ledger", "verify")).exitCode).toBe(0);
    } finally {
      cleanup(config);
    }
  }, 60_000);
});
