// What a sandboxed member learns of the host's paths from /proc/self/mountinfo, which shows each
// bind's path inside its source filesystem: never the config dir, nor the cell's secrets or
// portfolio dirs (Lazarus binds copies of those from /run/lazarus/view); without a disk image,
// only project/, shared/ and the member's home show the state dir's path; with one, nothing of the
// state dir shows. The copies stay live: a rotated credential and a changed portfolio reach the
// running member. Real bubblewrap, cgroups, uids from this file's band (uidBand), loop devices.
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cellYaml, configDir, lazarus, readRecord, waitFor } from "../helpers.js";
import { cleanupCgroups, sandboxEnv, sandboxStateDir, skipReason } from "./helpers.js";
import { cleanupDisks, diskSkipReason } from "./disk-helpers.js";

const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();

// The member: records what it sees once, then keeps copying its credentials and portfolio.
const PROBE = `#!/bin/sh
trap '' HUP
cat /proc/self/mountinfo > "$HOME/mountinfo.txt"
echo "$0" > "$HOME/argv0.txt"
while :; do
  cat "$CELL_CREDENTIALS" > "$HOME/creds.tmp" 2>/dev/null && mv -f "$HOME/creds.tmp" "$HOME/creds.txt"
  cat "$LAZARUS_PORTFOLIO" > "$HOME/portfolio.tmp" 2>/dev/null && mv -f "$HOME/portfolio.tmp" "$HOME/portfolio.txt"
  sleep 0.2
done
`;

const portfolio = (model: string) =>
  [
    "apiVersion: lazarus/v1",
    "kind: Portfolio",
    "metadata:",
    "  name: probe",
    "spec:",
    "  appliesTo: {agents: [probe]}",
    "  models:",
    `    - {model: ${model}, provider: anthropic}`,
    "",
  ].join("\n");

// mountinfo's fields: "ID PARENT MAJ:MIN ROOT MOUNTPOINT ..."; ROOT is the path inside the source.
const unescape = (s: string): string =>
  s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
const entries = (text: string) =>
  text
    .split("\n")
    .filter(Boolean)
    .map((line) => ({ line, root: unescape(line.split(" ")[3] ?? ""), at: unescape(line.split(" ")[4] ?? "") }));

describe.skipIf(skipReason)("the host paths a sandboxed member sees in /proc/self/mountinfo", () => {
  const state = sandboxStateDir();
  const cfg = configDir({ "probe.sh": PROBE, "portfolios/probe.yaml": portfolio("claude-sonnet-4") });
  const env = sandboxEnv("sandbox/mountinfo", { LAZARUS_SECRET_TOKEN: "one" });
  const run = (now: string, extraEnv: Record<string, string> = {}, ...args: string[]) =>
    lazarus([...args, "--now", now, "-c", cfg, "-s", state], { env: { ...env, ...extraEnv } });
  const home = (cell: string) => path.join(state, "cells", cell, "home", "probe");
  const declare = (cell: string, extra = "") =>
    writeFileSync(
      path.join(cfg, "cells.d", `${cell}.yaml`),
      cellYaml({
        name: cell,
        extra: `  backend: sandbox\n  credentials:\n    TOKEN: {env: LAZARUS_SECRET_TOKEN}${extra}`,
        members: [{ identity: "agent:probe", command: ["./probe.sh"] }],
      }),
    );
  chmodSync(path.join(cfg, "probe.sh"), 0o755);

  afterAll(async () => {
    await cleanupCgroups(env.LAZARUS_CGROUP_ROOT as string);
    cleanupDisks(state);
    for (const d of [state, cfg]) rmSync(d, { recursive: true, force: true });
  });

  const seen = async (cell: string) => {
    await waitFor(
      () => existsSync(path.join(home(cell), "mountinfo.txt")) && existsSync(path.join(home(cell), "creds.txt")),
      15_000,
    );
    return entries(readFileSync(path.join(home(cell), "mountinfo.txt"), "utf8"));
  };

  it("shows neither the config dir nor the cell's secrets or portfolio dirs; only project/, shared/ and the home show the state dir", async () => {
    declare("plain");
    const applied = await run(T(0), {}, "apply", "--yes");
    expect(applied.exitCode, applied.stdout + applied.stderr).toBe(0);
    const mounts = await seen("plain");
    console.log(`mountinfo of a member without a disk image:\n${mounts.map((m) => m.line).join("\n")}`);
    const text = mounts.map((m) => m.line).join("\n");
    expect(text).not.toContain(path.basename(cfg));
    expect(text).not.toContain(".lazarus/secrets");
    expect(text).not.toContain(".lazarus/members");
    expect(
      mounts
        .filter((m) => m.root.includes(path.basename(state)))
        .map((m) => m.at)
        .sort(),
    ).toEqual(["/cell/home/probe", "/cell/project", "/cell/shared"]);
    // the member still gets what those binds gave it: its command, credentials and portfolio
    expect(readFileSync(path.join(home("plain"), "argv0.txt"), "utf8").trim()).toBe("/run/lazarus/config/probe.sh");
    expect(JSON.parse(readFileSync(path.join(home("plain"), "creds.txt"), "utf8")).credentials).toEqual({
      TOKEN: "one",
    });
    await waitFor(() => existsSync(path.join(home("plain"), "portfolio.txt")));
    expect(readFileSync(path.join(home("plain"), "portfolio.txt"), "utf8")).toContain("claude-sonnet-4");

    // A rotated credential and a changed portfolio reach the running member, without a restart.
    const pid = readRecord(path.join(state, "cells", "plain")).members[0]?.pid;
    expect(pid).toBeGreaterThan(0);
    writeFileSync(path.join(cfg, "portfolios", "probe.yaml"), portfolio("claude-opus-4"));
    const rotated = await run(T(1), { LAZARUS_SECRET_TOKEN: "two" }, "apply", "--yes");
    expect(rotated.exitCode, rotated.stdout + rotated.stderr).toBe(0);
    expect(rotated.stdout).toMatch(/credentials rotated/);
    await waitFor(() => readFileSync(path.join(home("plain"), "creds.txt"), "utf8").includes('"two"'), 10_000);
    await waitFor(
      () => readFileSync(path.join(home("plain"), "portfolio.txt"), "utf8").includes("claude-opus-4"),
      10_000,
    );
    expect(readRecord(path.join(state, "cells", "plain")).members[0]?.pid).toBe(pid);
  });

  it.skipIf(diskSkipReason)("shows nothing of the state dir when the cell has a disk image", async () => {
    declare("imaged", "\n  resources: {disk: 32Mi}");
    const applied = await run(T(2), { LAZARUS_SECRET_TOKEN: "two" }, "apply", "--yes");
    expect(applied.exitCode, applied.stdout + applied.stderr).toBe(0);
    const mounts = await seen("imaged");
    console.log(`mountinfo of a member with a disk image:\n${mounts.map((m) => m.line).join("\n")}`);
    const text = mounts.map((m) => m.line).join("\n");
    expect(text).not.toContain(path.basename(state));
    expect(text).not.toContain(path.basename(cfg));
    // its dirs come from the image: their roots are the image's own paths
    const dirs = ["/cell/project", "/cell/shared", "/cell/home/probe"];
    expect(
      mounts
        .filter((m) => dirs.includes(m.at))
        .map((m) => `${m.at} ${m.root}`)
        .sort(),
    ).toEqual(["/cell/home/probe /home/probe", "/cell/project /project", "/cell/shared /shared"]);
  });
});
