// A member that makes a 4T sparse file (truncate -s 4T) must not stall the host: its cell's
// checkpoint is refused at once for its size bound, the cell keeps running and says why, the
// earlier checkpoints stay, and a close still happens (its final checkpoint refused, recorded).
// A sparse file under the bound is archived as sparse.
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import {
  AGENT,
  cellYaml,
  cleanup,
  configDir,
  killAll,
  lazarus,
  procState,
  readRecord,
  tempDir,
  waitFor,
} from "../helpers.js";

import type { Manifest } from "../../src/checkpoints/checkpoint.js";

const dirs: string[] = [];
const states: string[] = [];
afterAll(() => {
  for (const s of states) killAll(s);
  cleanup(...dirs);
});
const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();
const ledger = (state: string) =>
  readFileSync(path.join(state, "ledger.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { action: string; cell: string; details?: Record<string, unknown> });

// The member makes the sparse file in its home, then runs as the test agent does.
const yaml = (extra: Record<string, string> = {}) =>
  cellYaml({
    name: "big",
    extra: "  checkpoint:\n    maxSize: 1Gi",
    members: [{ identity: "agent:hoarder", command: ["sh", "-c", `truncate -s 4T huge.img && exec node ${AGENT}`] }],
    ...extra,
  });

describe("a checkpoint past its size bound", () => {
  it("is refused at once, the cell keeps running, and a close still happens with the refusal recorded", async () => {
    const state = tempDir("lazarus-state-");
    const config = configDir({ "cells.d/big.yaml": yaml() });
    dirs.push(state, config);
    states.push(state);
    const run = (args: string[]) => lazarus([...args, "--config", config, "--state-dir", state], { timeoutMs: 60_000 });
    expect((await run(["apply", "--now", T(0)])).exitCode).toBe(0);
    const cell = path.join(state, "cells", "big");
    const home = path.join(cell, "home", "hoarder");
    await waitFor(() => existsSync(path.join(home, "env.json")));
    expect(existsSync(path.join(home, "huge.img"))).toBe(true);
    const pid = readRecord(cell).members[0]?.pid as number;

    // refused, naming the bound and the file; nothing archived; the member never stopped
    const refused = await run(["checkpoint", "big", "--now", T(1)]);
    expect(refused.exitCode).not.toBe(0);
    expect(refused.stderr).toMatch(
      /checkpoint of cell big refused: .*home\/hoarder\/huge\.img, 4Ti.*checkpoint\.maxSize 1Gi/s,
    );
    expect(readdirSync(path.join(cell, ".lazarus", "checkpoints"))).toEqual([]);
    expect(procState(pid)).toMatch(/^[SR]$/);
    const rec = readRecord(cell);
    expect(rec.state).toBe("active");
    expect(rec.checkpointRefused?.error).toContain("checkpoint.maxSize 1Gi");
    const status = await run(["status", "big", "--now", T(1)]);
    expect(status.stdout).toContain("last checkpoint refused");
    expect(ledger(state).at(-1)).toMatchObject({
      action: "checkpoint-failed",
      cell: "big",
      details: { error: expect.stringContaining("checkpoint.maxSize 1Gi") },
    });

    // the member shrinks its file to a sparse 64M with data in it: archived sparse, refusal cleared
    rmSync(path.join(home, "huge.img"));
    writeFileSync(path.join(home, "data.img"), "");
    await execa("truncate", ["-s", "64M", path.join(home, "data.img")]);
    await execa("sh", [
      "-c",
      `printf 'work' | dd of="${path.join(home, "data.img")}" bs=1 seek=33554432 conv=notrunc 2>/dev/null`,
    ]);
    const ok = await run(["checkpoint", "big", "--now", T(2)]);
    expect(ok.exitCode, ok.stderr).toBe(0);
    const [archive] = readdirSync(path.join(cell, ".lazarus", "checkpoints")).filter(
      (f) => f.endsWith(".tar.zst") || f.endsWith(".tar.gz"),
    );
    const file = path.join(cell, ".lazarus", "checkpoints", archive as string);
    const raw = await execa(archive?.endsWith(".zst") ? "zstd" : "gzip", ["-dc", file], { encoding: "buffer" });
    expect(raw.stdout.length).toBeLessThan(2 * 1024 * 1024); // the holes are not in the tar
    const manifest = JSON.parse(readFileSync(file.replace(/\.tar\.(zst|gz)$/, ".manifest.json"), "utf8")) as Manifest;
    expect(manifest.files.find((f) => f.path === "home/hoarder/data.img")?.size).toBe(64 * 1024 * 1024);
    expect(readRecord(cell).checkpointRefused).toBeUndefined();

    // a close whose final checkpoint is refused: the close goes on; the earlier checkpoint and the
    // whole tree are in the graveyard, and the refusal is in the ledger and the close log
    await execa("truncate", ["-s", "4T", path.join(home, "huge.img")]);
    writeFileSync(path.join(config, "cells.d", "big.yaml"), yaml({ state: "closed" }));
    const closing = await run(["apply", "--now", T(3)]);
    expect(closing.exitCode).not.toBe(0); // the refused checkpoint is a failed action
    const grave = path.join(state, "graveyard", "big");
    expect(readRecord(grave).state).toBe("closed");
    expect(readdirSync(path.join(grave, ".lazarus", "checkpoints"))).toContain(archive);
    expect(existsSync(path.join(grave, "home", "hoarder", "huge.img"))).toBe(true);
    const entries = ledger(state).slice(-2);
    expect(entries.map((e) => e.action)).toEqual(["checkpoint-failed", "close"]);
    expect(entries[1]?.details?.checkpointRefused).toEqual(expect.stringContaining("checkpoint.maxSize 1Gi"));
    const closeLog = JSON.parse(readFileSync(path.join(grave, ".lazarus", "close.log"), "utf8")) as {
      checkpointRefused?: { error: string };
    };
    expect(closeLog.checkpointRefused?.error).toContain("refused");
    expect(procState(pid) ?? "Z").toBe("Z"); // the member was stopped by the close
  });

  it("is an error at its line when a cell asks for more than the host allows", async () => {
    const config = configDir({
      "cells.d/big.yaml": cellYaml({ name: "big", extra: "  checkpoint:\n    maxSize: 20Gi" }),
    });
    dirs.push(config);
    const r = await lazarus(["validate", "--config", config], { env: { LAZARUS_CHECKPOINT_MAX_SIZE: "2Gi" } });
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(
      /big\.yaml:\d+:\d+: .*maxSize 20Gi is above this host's bound of 2Gi \(LAZARUS_CHECKPOINT_MAX_SIZE\)/,
    );
    const bad = await lazarus(["validate", "--config", config], { env: { LAZARUS_CHECKPOINT_MAX_SIZE: "lots" } });
    expect(bad.stdout + bad.stderr).toContain('LAZARUS_CHECKPOINT_MAX_SIZE "lots" is not a size');
  });
});
