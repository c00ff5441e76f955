// Install like a tool: the tarball `npm pack` makes installs globally into an empty prefix and gives
// a working `lazarus` (dist/ and schemas/ shipped, the Perl helpers among them, dependencies
// resolved, the bin executable); a member applied by it starts through the shipped spawner.
// The package is packed from this checkout's dist/ (built by `npm test`) with --ignore-scripts, so
// the build of prepack does not rewrite dist/ under the tests running beside this one.
import { existsSync, readFileSync, readdirSync, realpathSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import {
  ROOT,
  SANDBOX_UNAVAILABLE,
  cellYaml,
  cleanup,
  configDir,
  readRecord,
  sandboxHostProblem,
  tempDir,
  waitFor,
} from "../helpers.js";
import { spawnerPerl } from "../../src/backends/spawner.js";

const dirs: string[] = [];
// cleanup waits for the member and its log pump to be dead before removing the tree, and the tree
// holds a global npm install (thousands of files): on a loaded host more than the 30 s default.
afterAll(() => cleanup(...dirs), 180_000);

describe("npm pack, then npm install -g of the tarball", () => {
  it("gives a lazarus that runs: --version, and validate on the example cells", async () => {
    const tmp = tempDir("lazarus-install-");
    dirs.push(tmp);
    await execa("npm", ["pack", "--ignore-scripts", "--pack-destination", tmp], { cwd: ROOT });
    const tarball = readdirSync(tmp).find((f) => f.endsWith(".tgz"));
    expect(tarball).toBeDefined();
    const prefix = path.join(tmp, "prefix");
    const npmCache = {
      npm_config_cache: process.env.npm_config_cache ?? path.join(process.env.HOME ?? "/root", ".npm"),
    };
    await execa(
      "npm",
      [
        "install",
        "-g",
        "--prefix",
        prefix,
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        path.join(tmp, tarball as string),
      ],
      { env: npmCache },
    );
    const bin = path.join(prefix, "bin", "lazarus");
    const version = await execa(bin, ["--version"]);
    expect(version.stdout.trim()).toBe(
      (JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string }).version,
    );
    const valid = await execa(bin, ["validate", "--config", ROOT], { reject: false, env: { NO_COLOR: "1" } });
    const unsandboxed = sandboxHostProblem();
    if (unsandboxed) {
      // A host that cannot run the sandbox backend says so of cells.d/review-sandboxed.yaml, and
      // of nothing else.
      console.warn(`SKIPPED in part: the sandbox example cannot validate on this host: ${unsandboxed}`);
      const errors = `${valid.stdout}\n${valid.stderr}`.split("\n").filter((l) => /\berror: /.test(l));
      expect(valid.exitCode, valid.stdout + valid.stderr).toBe(1);
      expect(errors.length, valid.stdout + valid.stderr).toBeGreaterThan(0);
      for (const e of errors) expect(e).toMatch(SANDBOX_UNAVAILABLE);
      expect(
        errors.every((e) => e.startsWith("cells.d/review-sandboxed.yaml:")),
        errors.join("\n"),
      ).toBe(true);
    } else expect(valid.exitCode, valid.stdout + valid.stderr).toBe(0);
    const help = await execa(bin, ["--help"]);
    expect(help.stdout).toContain("Usage: lazarus");
    // the unit `service install` writes names the installed CLI (links resolved), not this checkout's
    const unit = await execa(bin, [
      "service",
      "install",
      "--dry-run",
      "--config",
      ROOT,
      "--state-dir",
      path.join(tmp, "state"),
    ]);
    const execStart = unit.stdout.split("\n").find((l) => l.startsWith("ExecStart="));
    expect(execStart).toBe(
      `ExecStart=${process.execPath} ${realpathSync(path.join(prefix, "lib", "node_modules", "lazarus", "dist", "cli.js"))} watch --config ${ROOT}`,
    );
    // The helpers in other languages are in the package (the Perl spawner and splicer, the bridge's
    // listener child), and a member applied by the installed CLI starts
    // through its spawner (the pump is the spawner's fork, named after the log).
    const installed = path.join(prefix, "lib", "node_modules", "lazarus", "dist");
    for (const pl of ["backends/spawner.pl", "egress/splicer.pl", "bridge/listen-child.mjs"])
      expect(existsSync(path.join(installed, pl)), pl).toBe(true);
    if (!spawnerPerl())
      return console.warn(
        "SKIPPED in part: no perl with POSIX, Errno, Fcntl and Time::HiRes to run the shipped spawner",
      );
    const state = path.join(tmp, "state");
    const config = configDir({
      "cells.d/p.yaml": cellYaml({
        name: "p",
        members: [{ identity: "agent:p", command: ["sh", "-c", "echo packed; exec sleep 600"] }],
      }),
    });
    dirs.push(config, state);
    const applied = await execa(bin, ["apply", "--yes", "--config", config, "--state-dir", state], {
      reject: false,
      env: { NO_COLOR: "1" },
    });
    expect(applied.exitCode, applied.stderr).toBe(0);
    const log = path.join(state, "cells", "p", ".lazarus", "logs", "p.log");
    await waitFor(() => existsSync(log) && readFileSync(log, "utf8").includes("packed"), 20_000);
    expect(readFileSync(log, "utf8")).toMatch(/^\d{4}-\d{2}-\d{2}T\S+Z packed\n$/);
    const pumps = readdirSync("/proc")
      .filter((e) => /^\d+$/.test(e))
      .filter((e) => {
        try {
          return readFileSync(`/proc/${e}/cmdline`, "utf8").startsWith(`lazarus log-pump ${log}`);
        } catch {
          return false;
        }
      });
    expect(pumps.length).toBe(1);
    expect(readRecord(path.join(state, "cells", "p")).members[0]?.status).toBe("running");
  }, 300_000);
});
