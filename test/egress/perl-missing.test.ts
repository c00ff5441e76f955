// A host without /usr/bin/perl (the egress forwarder is a Perl script): a cell with an egress list
// is an error at its network line, with what to do, in validate and plan; no crash, and the other
// cells still plan. The real CLI runs in a mount namespace of the test's own where /usr/bin is a
// tmpfs of links to the host's /usr/bin, all but perl (the host's files are never touched).
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, cellYaml, configDir, tempDir } from "../helpers.js";

// Mounts the tmpfs over /usr/bin (its own links into a bind of the host's), then runs the rest.
const WITHOUT_PERL = [
  "set -e",
  'mount --bind /usr/bin "$1/orig"',
  "mount -t tmpfs -o mode=0755 lazarus-test /usr/bin",
  '"$1/orig/ln" -s "$1"/orig/* /usr/bin/',
  '"$1/orig/rm" -f /usr/bin/perl',
  "shift",
  'exec "$@"',
].join("\n");

function skipWhy(): string | undefined {
  if (process.getuid?.() !== 0) return "it needs root (a mount namespace of its own)";
  if (spawnSync("unshare", ["--mount", "--propagation", "private", "true"]).status !== 0)
    return "unshare --mount fails here";
  return undefined;
}
const skipReason = skipWhy();
if (skipReason) console.warn(`SKIPPED: egress without perl: ${skipReason}`);

describe.skipIf(skipReason)("egress on a host without /usr/bin/perl", () => {
  const scratch = tempDir("lazarus-noperl-");
  const state = tempDir("lazarus-noperl-state-");
  const cfg = configDir({
    "cells.d/out.yaml": cellYaml({
      name: "out",
      extra: "  backend: sandbox\n  network: {egress: [api.example.org]}",
      members: [{ identity: "agent:a", command: ["sleep", "100"] }],
    }),
    "cells.d/plain.yaml": cellYaml({ name: "plain", members: [{ identity: "agent:b", command: ["sleep", "100"] }] }),
  });
  afterAll(() => {
    for (const d of [scratch, state, cfg]) rmSync(d, { recursive: true, force: true });
  });
  mkdirSync(path.join(scratch, "orig"));
  chmodSync(scratch, 0o755); // the links must resolve for every uid (bwrap's probe runs as nobody)
  const cli = (...args: string[]) => {
    const r = spawnSync(
      "unshare",
      [
        "--mount",
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        WITHOUT_PERL,
        "noperl",
        scratch,
        process.execPath,
        CLI,
        ...args,
        "-c",
        cfg,
        "-s",
        state,
      ],
      { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" }, timeout: 120_000 },
    );
    return { code: r.status, out: `${r.stdout}${r.stderr}` };
  };

  it("is an error at the cell's network line that says what to do, and the other cells still plan", () => {
    const probe = spawnSync(
      "unshare",
      [
        "--mount",
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        WITHOUT_PERL,
        "noperl",
        scratch,
        "/bin/sh",
        "-c",
        "test ! -e /usr/bin/perl && test -x /usr/bin/env",
      ],
      { encoding: "utf8" },
    );
    expect(probe.status, `the namespace hides perl and keeps the rest: ${probe.stderr}`).toBe(0);

    const validate = cli("validate");
    expect(validate.code).toBe(1);
    expect(validate.out).toMatch(
      /cells\.d\/out\.yaml:\d+:\d+: error: spec\.network: network egress needs \/usr\/bin\/perl on this host/,
    );
    expect(validate.out).toMatch(/install perl \(apt-get install perl-base\), or remove the egress list/);
    expect(validate.out).not.toMatch(/\n\s+at .*\.js:\d+/); // no stack trace
    expect(validate.out).not.toMatch(/plain\.yaml.*error/);
    expect(validate.out.match(/error:/g)).toHaveLength(1); // only what lacks perl

    const plan = cli("plan");
    expect(plan.out).toMatch(
      /cells\.d\/out\.yaml:\d+:\d+: error: spec\.network: network egress needs \/usr\/bin\/perl/,
    );
    expect(plan.out).toMatch(/\+ create\s+plain/);
    expect(plan.out).not.toMatch(/\+ create\s+out/);
    expect(plan.out).not.toMatch(/\n\s+at .*\.js:\d+/);
  });
});
