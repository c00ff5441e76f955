// spec.runtime.python in a sandboxed cell: the venv is built by Lazarus (root) on the host and
// shown read-only at its own path, so the member (the cell's uid, in bubblewrap) runs in it and
// imports what it holds, and cannot change it.
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { cellYaml, lazarus, readRecord, waitFor } from "../helpers.js";
import { venvSkipReason, writeWheel } from "../python-helpers.js";
import { sandboxSuite, skipReason } from "./helpers.js";

const venvSkip = skipReason ?? (await venvSkipReason("sandbox"));
if (venvSkip && !skipReason) console.warn(`SKIPPED: ${venvSkip}`);

const PROBE = [
  "sh",
  "-c",
  [
    `python -c 'import os, sys, lzpkg; print(sys.prefix); print(os.environ["VIRTUAL_ENV"]); print(os.getuid()); print(lzpkg.GREETING)' > "$HOME/probe.tmp" 2>&1`,
    `if touch "$VIRTUAL_ENV/planted" 2>/dev/null; then echo writable; else echo read-only; fi >> "$HOME/probe.tmp"`,
    `mv "$HOME/probe.tmp" "$HOME/probe.txt"`,
    "exec sleep 600",
  ].join("; "),
];

describe.skipIf(venvSkip !== undefined)("a sandboxed cell's venv", () => {
  const { run, cfg, state, env } = sandboxSuite("sandbox/python");

  it("is visible read-only at its own path; the member runs in it as the cell's uid and imports the local wheel", async () => {
    await writeWheel(path.join(cfg, "python", "wheels"), "lzpkg", "0.1", "hello from a sandbox");
    writeFileSync(path.join(cfg, "python", "requirements.txt"), "lzpkg==0.1\n");
    writeFileSync(
      path.join(cfg, "cells.d", "s.yaml"),
      cellYaml({
        name: "sbx-py",
        extra:
          "  backend: sandbox\n  runtime:\n    python: {requirements: python/requirements.txt, findLinks: python/wheels}",
        members: [{ identity: "agent:py", command: PROBE }],
      }),
    );
    const r = await run("apply", "--yes");
    expect(r.stdout + r.stderr).toMatch(/create\s+sbx-py .* done/);
    expect(r.exitCode).toBe(0);
    const cell = path.join(state, "cells", "sbx-py");
    const rec = readRecord(cell);
    const venv = path.join(cell, ".lazarus", "venvs", rec.python!.digest);
    const probe = path.join(cell, "home", "py", "probe.txt");
    await waitFor(() => existsSync(probe), 30_000);
    expect(readFileSync(probe, "utf8").trim().split("\n")).toEqual([
      venv,
      venv,
      String(rec.sandbox!.uid),
      "hello from a sandbox",
      "read-only",
    ]);
    expect(existsSync(path.join(venv, "planted"))).toBe(false);
    expect(statSync(venv).uid).toBe(0);
    expect(statSync(venv).mode & 0o777).toBe(0o755);
    // Its python is the host's /usr one (what the sandbox shows of the host).
    expect(readFileSync(path.join(venv, "pyvenv.cfg"), "utf8")).toMatch(/^home = \/(usr\/)?bin$/m);
    // verify's probe runs in the member's view without the venv (MemberRun.venv): its read-only
    // bind at its own path would show the probe the bare path down to it (here under /tmp)
    const v = await lazarus(["verify", "sbx-py", "-s", state, "--json"], { env });
    expect(v.exitCode, v.stdout + v.stderr).toBe(0);
    const checks = (JSON.parse(v.stdout) as { cells: { checks: { ok: boolean }[] }[] }).cells[0]?.checks;
    expect(checks?.length).toBeGreaterThan(0);
    expect(checks?.filter((c) => !c.ok)).toEqual([]);
  }, 400_000);
});
