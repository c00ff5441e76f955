// lazarus service install|uninstall: the unit is checked by systemd's own parser (systemd-analyze
// verify, offline: --man=no --generators=no, no running systemd needed; .ci/run installs it), and
// its ExecStart, Environment and WorkingDirectory are run as systemd would run them (outside
// systemd: this container has no systemd as pid 1, so nothing is started with systemctl).
import { existsSync, mkdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { which } from "../../src/util/which.js";
import { AGENT, CLI, cellYaml, cleanup, configDir, lazarus, readRecord, tempDir, waitFor } from "../helpers.js";

const analyze = which("systemd-analyze", process.env.PATH);
const dirs: string[] = [];
const temp = (prefix: string): string => {
  const d = tempDir(prefix);
  dirs.push(d);
  return d;
};
afterAll(() => cleanup(...dirs));

// systemd-analyze verify exits 0 even when it ignores a line it cannot parse: its output must be empty.
async function verify(file: string, user = false): Promise<string> {
  const runtime = temp("lazarus-xdg-runtime-");
  const r = await execa(analyze as string, [...(user ? ["--user"] : []), "verify", "--man=no", "--generators=no", file], { reject: false, env: { XDG_RUNTIME_DIR: runtime } });
  return `${r.stdout}${r.stderr}`.trim() + (r.exitCode === 0 ? "" : `\nexit ${r.exitCode}`);
}

// An ExecStart= line split as systemd splits it (double quotes, backslash escapes, %% and $$).
function execWords(line: string): string[] {
  const words: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (const m of line.matchAll(re)) {
    const w = m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : (m[2] as string);
    words.push(w.replaceAll("%%", "%").replaceAll("$$", "$"));
  }
  return words;
}
const directive = (unit: string, key: string): string[] => unit.split("\n").filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));

describe("lazarus service install", () => {
  it("prints a unit systemd-analyze verify accepts, for a system and a user unit", async (ctx) => {
    if (!analyze) ctx.skip(true, "systemd-analyze is not installed (apt-get install systemd; .ci/run does)");
    const config = configDir({}, temp("lazarus-svc-config-"));
    const dir = temp("lazarus-svc-units-");
    for (const user of [false, true]) {
      const r = await lazarus(["service", "install", "--dry-run", ...(user ? ["--user"] : []), "--config", config, "--state-dir", path.join(dir, "state"), "--metrics-port", "9464"]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).toContain("would write");
      const file = path.join(dir, `lazarus-${user ? "user" : "system"}.service`);
      writeFileSync(file, r.stdout);
      expect(await verify(file, user)).toBe("");
      expect(directive(r.stdout, "WantedBy")).toEqual([user ? "default.target" : "multi-user.target"]);
    }
    expect(existsSync("/etc/systemd/system/lazarus.service") && readFileSync("/etc/systemd/system/lazarus.service", "utf8").includes(config)).toBe(false);
  });

  it("systemd-analyze verify is not a rubber stamp: a misspelt kill mode is reported", async (ctx) => {
    if (!analyze) ctx.skip(true, "systemd-analyze is not installed");
    const config = configDir({}, temp("lazarus-svc-config-"));
    const r = await lazarus(["service", "install", "--dry-run", "--config", config]);
    const file = path.join(temp("lazarus-svc-units-"), "bad.service");
    writeFileSync(file, r.stdout.replace(/^KillMode=process$/m, "KillMode=proces"));
    expect(await verify(file)).toMatch(/kill mode/i);
  });

  it("names node and the installed CLI by absolute path, keeps members alive across restarts, restarts on failure", async () => {
    const config = configDir({}, temp("lazarus-svc-config-"));
    const r = await lazarus(["service", "install", "--dry-run", "--config", config, "--state-dir", "/var/lib/lazarus-test", "--secrets-dir", config]);
    const unit = r.stdout;
    expect(execWords(directive(unit, "ExecStart")[0] as string)).toEqual([process.execPath, realpathSync(CLI), "watch", "--config", config]);
    expect(directive(unit, "KillMode")).toEqual(["process"]);
    expect(directive(unit, "Restart")).toEqual(["on-failure"]);
    expect(directive(unit, "RestartSec")).toEqual(["5s"]);
    expect(directive(unit, "Environment")).toContain('"LAZARUS_STATE_DIR=/var/lib/lazarus-test"');
    expect(directive(unit, "Environment")).toContain(`"LAZARUS_SECRETS_DIR=${config}"`);
    // members get PATH from the daemon: the installing node's directory comes first, then systemd's default
    const systemdPath = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
    const expectedPath = (systemdPath.includes(path.dirname(process.execPath)) ? systemdPath : [path.dirname(process.execPath), ...systemdPath]).join(":");
    expect(directive(unit, "Environment")).toContain(`"PATH=${expectedPath}"`);
    expect(unit).toMatch(/^# .*KillMode=control-group would SIGTERM them/m); // the why, in the unit
    for (const risky of ["ProtectSystem", "PrivateTmp", "ProtectHome", "NoNewPrivileges", "MemoryDenyWriteExecute", "ProtectControlGroups"]) expect(directive(unit, risky)).toEqual([]);
  });

  it("follows a repo instead of a config dir, as watch takes it", async () => {
    const r = await lazarus(["service", "install", "--dry-run", "--repo", "https://example.com/ops.git", "--ref", "prod", "--path", "cluster-a", "--state-dir", "/srv/lz"]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(execWords(directive(r.stdout, "ExecStart")[0] as string).slice(2)).toEqual(["watch", "--repo", "https://example.com/ops.git", "--ref", "prod", "--path", "cluster-a"]);
    expect(directive(r.stdout, "WorkingDirectory")).toEqual(["/srv/lz"]);
    const both = await lazarus(["service", "install", "--dry-run", "--repo", "x", "--config", "."]);
    expect(both.exitCode).toBe(1);
    expect(both.stderr).toContain("--config and --repo exclude each other");
  });

  it("checks the watch options it passes on, so a typo fails at install and not at boot", async () => {
    const config = configDir({}, temp("lazarus-svc-config-"));
    const ok = await lazarus(["service", "install", "--dry-run", "--config", config, "--", "--log-level", "debug", "--resync", "10m"]);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(execWords(directive(ok.stdout, "ExecStart")[0] as string).slice(-4)).toEqual(["--log-level", "debug", "--resync", "10m"]);
    const typo = await lazarus(["service", "install", "--dry-run", "--config", config, "--", "--log-levl", "debug"]);
    expect(typo.exitCode).toBe(1);
    expect(typo.stderr).toContain("unknown option '--log-levl'");
    const missing = await lazarus(["service", "install", "--dry-run", "--config", path.join(config, "nope")]);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toMatch(/config dir .*nope does not exist/);
  });

  it("writes the unit, leaves an identical one alone, refuses to overwrite a different one without --force", async () => {
    const config = configDir({}, temp("lazarus-svc-config-"));
    const units = temp("lazarus-svc-units-");
    const file = path.join(units, "lazarus-a.service");
    const first = await lazarus(["service", "install", "--name", "lazarus-a", "--unit-dir", units, "--config", config, "--state-dir", "/srv/a"]);
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stdout).toContain(`Wrote ${file}.`);
    expect(first.stdout).toContain("Next: systemctl daemon-reload && systemctl enable --now lazarus-a.service");
    const written = readFileSync(file, "utf8");
    const again = await lazarus(["service", "install", "--name", "lazarus-a", "--unit-dir", units, "--config", config, "--state-dir", "/srv/a"]);
    expect(again.exitCode).toBe(0);
    expect(again.stdout).toContain("is already this unit");
    const other = await lazarus(["service", "install", "--name", "lazarus-a", "--unit-dir", units, "--config", config, "--state-dir", "/srv/b"]);
    expect(other.exitCode).toBe(1);
    expect(other.stderr).toContain("exists and differs");
    expect(readFileSync(file, "utf8")).toBe(written);
    const forced = await lazarus(["service", "install", "--name", "lazarus-a", "--unit-dir", units, "--config", config, "--state-dir", "/srv/b", "--json"]);
    expect(forced.exitCode).toBe(1);
    const replaced = await lazarus(["service", "install", "--force", "--json", "--name", "lazarus-a", "--unit-dir", units, "--config", config, "--state-dir", "/srv/b"]);
    expect(replaced.exitCode, replaced.stderr).toBe(0);
    expect(JSON.parse(replaced.stdout)).toMatchObject({ path: file, written: true, changed: true });
    expect(readFileSync(file, "utf8")).toContain('"LAZARUS_STATE_DIR=/srv/b"');
  });

  it("its ExecStart, Environment and WorkingDirectory start a working daemon (a path with a space and a %)", async () => {
    const base = temp("lazarus-svc-run-");
    const config = configDir({ "cells.d/svc.yaml": cellYaml({ name: "svc", ttl: "4h", members: [{ identity: "agent:allegro", command: ["node", AGENT] }] }) }, path.join(base, "my config 100%"));
    mkdirSync(config, { recursive: true });
    const state = path.join(base, "state $HOME");
    dirs.push(state);
    const r = await lazarus(["service", "install", "--dry-run", "--config", config, "--state-dir", state]);
    expect(r.exitCode, r.stderr).toBe(0);
    const [node, ...args] = execWords(directive(r.stdout, "ExecStart")[0] as string);
    const env: Record<string, string> = {};
    for (const e of directive(r.stdout, "Environment")) {
      const [kv] = execWords(e);
      const i = (kv as string).indexOf("=");
      env[(kv as string).slice(0, i)] = (kv as string).slice(i + 1);
    }
    expect(env.LAZARUS_STATE_DIR).toBe(state);
    const cwd = execWords(directive(r.stdout, "WorkingDirectory")[0] as string)[0] as string;
    expect(cwd).toBe(config);
    let logs = "";
    const daemon = execa(node as string, args, { cwd, env: { ...env }, extendEnv: false, reject: false });
    daemon.stdout?.on("data", (d: Buffer) => (logs += d.toString()));
    daemon.stderr?.on("data", (d: Buffer) => (logs += d.toString()));
    try {
      await waitFor(() => logs.includes('"msg":"watching"'), 20_000);
      expect(existsSync(path.join(state, "cells", "svc"))).toBe(true);
      // What KillMode=process relies on (docs/operations.md): the member leads its own session and
      // process group (setsid), apart from the daemon's, so only the cgroup ties it to the unit.
      const member = readRecord(path.join(state, "cells", "svc")).members[0]?.pid as number;
      const stat = (pid: number): string[] => {
        const text = readFileSync(`/proc/${pid}/stat`, "utf8");
        return text.slice(text.lastIndexOf(")") + 2).split(" "); // [state, ppid, pgrp, session, ...]
      };
      expect(stat(member)[3]).toBe(String(member));
      expect(stat(member)[2]).toBe(String(member));
      expect(stat(daemon.pid as number)[3]).not.toBe(String(member));
    } finally {
      daemon.kill("SIGTERM");
    }
    expect((await daemon).exitCode, logs).toBe(0);
  });
});

describe("lazarus service uninstall", () => {
  it("removes only a unit it wrote, and not while it is enabled", async () => {
    const config = configDir({}, temp("lazarus-svc-config-"));
    const units = temp("lazarus-svc-units-");
    const file = path.join(units, "lazarus.service");
    expect((await lazarus(["service", "install", "--unit-dir", units, "--config", config, "--state-dir", "/srv/a"])).exitCode).toBe(0);
    mkdirSync(path.join(units, "multi-user.target.wants"));
    symlinkSync(file, path.join(units, "multi-user.target.wants", "lazarus.service"));
    const enabled = await lazarus(["service", "uninstall", "--unit-dir", units]);
    expect(enabled.exitCode).toBe(1);
    expect(enabled.stderr).toContain("systemctl disable --now lazarus.service");
    expect(existsSync(file)).toBe(true);
    await execa("rm", [path.join(units, "multi-user.target.wants", "lazarus.service")]);
    const removed = await lazarus(["service", "uninstall", "--unit-dir", units]);
    expect(removed.exitCode, removed.stderr).toBe(0);
    expect(removed.stdout).toContain("Next: systemctl daemon-reload");
    expect(existsSync(file)).toBe(false);
    writeFileSync(file, "[Service]\nExecStart=/bin/true\n");
    const foreign = await lazarus(["service", "uninstall", "--unit-dir", units]);
    expect(foreign.exitCode).toBe(1);
    expect(foreign.stderr).toContain("was not written by lazarus service install");
    expect(existsSync(file)).toBe(true);
    const absent = await lazarus(["service", "uninstall", "--unit-dir", units, "--name", "nothing"]);
    expect(absent.exitCode).toBe(1);
    expect(absent.stderr).toContain("does not exist");
  });
});
