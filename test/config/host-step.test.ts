// Loading is pure; this host is checked in a step of its own after it (config/load.ts checkHost),
// still reported at the cell's lines with the same messages and exit codes. The engine here is a
// stand-in podman script on PATH that logs each call (a real process; a real engine is not
// needed to see whether loading runs one).
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT, cellYaml, cleanup, configDir, lazarus, tempDir } from "../helpers.js";

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));

// A bin dir whose podman logs its arguments to log and answers "no such image" to image inspect.
function standInEngine(): { bin: string; log: string } {
  const bin = tempDir("lazarus-bin-");
  dirs.push(bin);
  const log = path.join(bin, "calls.log");
  writeFileSync(
    path.join(bin, "podman"),
    `#!/bin/sh\necho "$*" >> ${JSON.stringify(log)}\n[ "$1" = image ] && exit 1\necho crun\n`,
  );
  chmodSync(path.join(bin, "podman"), 0o755);
  return { bin, log };
}

const CELL = cellYaml({ name: "c1", extra: "  backend: container\n  container: {image: localhost/absent:1}" });

// Run in a child node process (the engine is probed once per process) with the stand-in first on PATH.
async function inChild(body: string, bin: string): Promise<unknown> {
  const script = `const load = await import(${JSON.stringify(path.join(ROOT, "dist", "config", "load.js"))});\nconst text = ${JSON.stringify(CELL)};\nprocess.stdout.write(JSON.stringify(await (async () => {${body}})()));`;
  const r = await execa("node", ["--input-type=module", "-e", script], {
    env: { PATH: `${bin}:${process.env.PATH}`, LAZARUS_CONTAINER_ENGINE: "podman" },
  });
  return JSON.parse(String(r.stdout));
}

describe("the host step", () => {
  it("loading a file runs no host tool; the host step after it does, and reports at the cell's line", async () => {
    const { bin, log } = standInEngine();
    const pure = (await inChild(
      `return load.loadFileText("cells.d/a.yaml", text).diagnostics.map((d) => d.field);`,
      bin,
    )) as string[];
    expect(pure).not.toContain("spec.container.image");
    expect(existsSync(log), "loadFileText ran the container engine").toBe(false);
    const checked = (await inChild(
      `return (await load.checkFileText("cells.d/a.yaml", text)).diagnostics.filter((d) => d.field === "spec.container.image").map((d) => \`\${d.file}:\${d.line}: \${d.message}\`);`,
      bin,
    )) as string[];
    expect(checked).toEqual([
      `cells.d/a.yaml:${CELL.split("\n").findIndex((l) => l.includes("container: {image")) + 1}: image localhost/absent:1 is not present in podman`,
    ]);
    expect(readFileSync(log, "utf8")).toMatch(/^info --format/m);
  });

  it("validate and plan still report a host problem at its file:line, and exit 1", async () => {
    const { bin } = standInEngine();
    const config = configDir({ "cells.d/a.yaml": CELL });
    const state = tempDir("lazarus-state-");
    dirs.push(config, state);
    const env = { PATH: `${bin}:${process.env.PATH}`, LAZARUS_CONTAINER_ENGINE: "podman" };
    const line = CELL.split("\n").findIndex((l) => l.includes("container: {image")) + 1;
    for (const args of [["validate"], ["plan", "--state-dir", state]]) {
      const r = await lazarus([...args, "--config", config], { env });
      expect(r.exitCode, `${args[0]}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toContain(`cells.d/a.yaml:${line}:`);
      expect(r.stderr).toContain("image localhost/absent:1 is not present in podman");
    }
  });
});
