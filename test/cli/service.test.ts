// lazarus service install|uninstall: the unit is checked by systemd's own parser (systemd-analyze
// verify, offline: --man=no --generators=no, no running systemd needed; .ci/run installs it), and
// its ExecStart, Environment and WorkingDirectory are run as systemd would run them (outside
// systemd: this container has no systemd as pid 1, so nothing is started with systemctl).
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  realpathSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { which } from "../../src/util/which.js";
import { HOST_SETTINGS } from "../../src/host/table.js";
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
  const r = await execa(
    analyze as string,
    [...(user ? ["--user"] : []), "verify", "--man=no", "--generators=no", file],
    { reject: false, env: { XDG_RUNTIME_DIR: runtime } },
  );
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
// An EnvironmentFile= read as systemd reads it. No systemd runs here (pid 1 is not systemd) and
// systemd-analyze has no command that prints a unit's environment, so this follows systemd's parser
// (src/basic/env-file.c, parse_env_file_internal; rules in systemd.exec(5), EnvironmentFile=):
// # and ; start comments, leading and trailing blanks are dropped, '…' is literal, in "…" a
// backslash escapes " \ ` $ (before anything else it stays), unquoted \x is x, a backslash-newline
// continues the line; names that are not valid variable names are ignored.
function parseEnvironmentFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const WS = " \t\n\r";
  const NL = "\n\r";
  let state = "PRE_KEY";
  let key = "";
  let value = "";
  let trailingWs = -1; // where trailing unquoted whitespace of the value starts
  const push = (): void => {
    if (trailingWs >= 0) value = value.slice(0, trailingWs);
    const k = key.trimEnd();
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) out[k] = value;
    key = "";
    value = "";
    trailingWs = -1;
  };
  for (const c of text) {
    switch (state) {
      case "PRE_KEY":
        if (c === "#" || c === ";") state = "COMMENT";
        else if (!WS.includes(c)) ((state = "KEY"), (key = c));
        break;
      case "KEY":
        if (NL.includes(c)) ((state = "PRE_KEY"), (key = ""));
        else if (c === "=") ((state = "PRE_VALUE"), (trailingWs = -1));
        else key += c;
        break;
      case "PRE_VALUE":
        if (NL.includes(c)) ((state = "PRE_KEY"), push());
        else if (c === "'") state = "SQ";
        else if (c === '"') state = "DQ";
        else if (c === "\\") state = "ESC";
        else if (!WS.includes(c)) ((state = "VALUE"), (value += c));
        break;
      case "VALUE":
        if (NL.includes(c)) ((state = "PRE_KEY"), push());
        else if (c === "\\") ((state = "ESC"), (trailingWs = -1));
        else {
          if (!WS.includes(c)) trailingWs = -1;
          else if (trailingWs < 0) trailingWs = value.length;
          value += c;
        }
        break;
      case "ESC":
        state = "VALUE";
        if (!NL.includes(c)) value += c;
        break;
      case "SQ":
        if (c === "'") state = "PRE_VALUE";
        else value += c;
        break;
      case "DQ":
        if (c === '"') state = "PRE_VALUE";
        else if (c === "\\") state = "DQ_ESC";
        else value += c;
        break;
      case "DQ_ESC":
        state = "DQ";
        if ('"\\`$'.includes(c)) value += c;
        else if (c !== "\n") value += `\\${c}`;
        break;
      case "COMMENT":
        if (c === "\\") state = "COMMENT_ESC";
        else if (NL.includes(c)) state = "PRE_KEY";
        break;
      case "COMMENT_ESC":
        state = "COMMENT";
        break;
    }
  }
  if (["PRE_VALUE", "VALUE", "ESC", "SQ", "DQ", "DQ_ESC"].includes(state)) push();
  return out;
}

// The environment systemd gives the unit's ExecStart: its Environment= lines, then its
// EnvironmentFile= (which wins, systemd.exec(5)).
function unitEnvironment(unit: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of directive(unit, "Environment")) {
    const [kv] = execWords(e);
    const i = (kv as string).indexOf("=");
    env[(kv as string).slice(0, i)] = (kv as string).slice(i + 1);
  }
  for (const f of directive(unit, "EnvironmentFile"))
    Object.assign(env, parseEnvironmentFile(readFileSync(f.replaceAll("%%", "%"), "utf8")));
  return env;
}

const directive = (unit: string, key: string): string[] =>
  unit
    .split("\n")
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));

describe("lazarus service install", () => {
  it("prints a unit systemd-analyze verify accepts, for a system and a user unit", async (ctx) => {
    if (!analyze) ctx.skip(true, "systemd-analyze is not installed (apt-get install systemd; .ci/run does)");
    const config = configDir({}, temp("lazarus-svc-config-"));
    const dir = temp("lazarus-svc-units-");
    for (const user of [false, true]) {
      const r = await lazarus([
        "service",
        "install",
        "--dry-run",
        ...(user ? ["--user"] : []),
        "--config",
        config,
        "--state-dir",
        path.join(dir, "state"),
        "--metrics-port",
        "9464",
      ]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).toContain("would write");
      const file = path.join(dir, `lazarus-${user ? "user" : "system"}.service`);
      writeFileSync(file, r.stdout);
      expect(await verify(file, user)).toBe("");
      expect(directive(r.stdout, "WantedBy")).toEqual([user ? "default.target" : "multi-user.target"]);
    }
    expect(
      existsSync("/etc/systemd/system/lazarus.service") &&
        readFileSync("/etc/systemd/system/lazarus.service", "utf8").includes(config),
    ).toBe(false);
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
    const r = await lazarus([
      "service",
      "install",
      "--dry-run",
      "--config",
      config,
      "--state-dir",
      "/var/lib/lazarus-test",
      "--secrets-dir",
      config,
    ]);
    const unit = r.stdout;
    expect(directive(unit, "EnvironmentFile")).toEqual(["/etc/lazarus/lazarus.env"]);
    expect(execWords(directive(unit, "ExecStart")[0] as string)).toEqual([
      process.execPath,
      realpathSync(CLI),
      "watch",
      "--config",
      config,
    ]);
    expect(directive(unit, "KillMode")).toEqual(["process"]);
    expect(directive(unit, "Restart")).toEqual(["on-failure"]);
    expect(directive(unit, "RestartSec")).toEqual(["5s"]);
    expect(r.stderr).toContain('#   LAZARUS_STATE_DIR="/var/lib/lazarus-test"');
    expect(r.stderr).toContain(`#   LAZARUS_SECRETS_DIR="${config}"`);
    // members get PATH from the daemon: the installing node's directory comes first, then systemd's default
    const systemdPath = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
    const expectedPath = (
      systemdPath.includes(path.dirname(process.execPath))
        ? systemdPath
        : [path.dirname(process.execPath), ...systemdPath]
    ).join(":");
    expect(directive(unit, "Environment")).toContain(`"PATH=${expectedPath}"`);
    expect(unit).toMatch(/^# .*KillMode=control-group would SIGTERM them/m); // the why, in the unit
    for (const risky of [
      "ProtectSystem",
      "PrivateTmp",
      "ProtectHome",
      "NoNewPrivileges",
      "MemoryDenyWriteExecute",
      "ProtectControlGroups",
    ])
      expect(directive(unit, risky)).toEqual([]);
  });

  it("follows a repo instead of a config dir, as watch takes it", async () => {
    const r = await lazarus([
      "service",
      "install",
      "--dry-run",
      "--repo",
      "https://example.com/ops.git",
      "--ref",
      "prod",
      "--path",
      "cluster-a",
      "--state-dir",
      "/srv/lz",
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(execWords(directive(r.stdout, "ExecStart")[0] as string).slice(2)).toEqual([
      "watch",
      "--repo",
      "https://example.com/ops.git",
      "--ref",
      "prod",
      "--path",
      "cluster-a",
    ]);
    expect(directive(r.stdout, "WorkingDirectory")).toEqual(["/srv/lz"]);
    const both = await lazarus(["service", "install", "--dry-run", "--repo", "x", "--config", "."]);
    expect(both.exitCode).toBe(1);
    expect(both.stderr).toContain("--config and --repo exclude each other");
  });

  it("checks the watch options it passes on, so a typo fails at install and not at boot", async () => {
    const config = configDir({}, temp("lazarus-svc-config-"));
    const ok = await lazarus([
      "service",
      "install",
      "--dry-run",
      "--config",
      config,
      "--",
      "--log-level",
      "debug",
      "--resync",
      "10m",
    ]);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(execWords(directive(ok.stdout, "ExecStart")[0] as string).slice(-4)).toEqual([
      "--log-level",
      "debug",
      "--resync",
      "10m",
    ]);
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
    const first = await lazarus([
      "service",
      "install",
      "--name",
      "lazarus-a",
      "--unit-dir",
      units,
      "--config",
      config,
      "--state-dir",
      "/srv/a",
    ]);
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stdout).toContain(`Wrote ${file} and ${path.join(units, "lazarus-a.env")}.`);
    expect(first.stdout).toContain("Next: systemctl daemon-reload && systemctl enable --now lazarus-a.service");
    const written = readFileSync(file, "utf8");
    const again = await lazarus([
      "service",
      "install",
      "--name",
      "lazarus-a",
      "--unit-dir",
      units,
      "--config",
      config,
      "--state-dir",
      "/srv/a",
    ]);
    expect(again.exitCode).toBe(0);
    expect(again.stdout).toContain("is already this unit");
    const other = await lazarus([
      "service",
      "install",
      "--name",
      "lazarus-a",
      "--unit-dir",
      units,
      "--config",
      config,
      "--state-dir",
      "/srv/b",
    ]);
    expect(other.exitCode).toBe(1);
    expect(other.stderr).toContain("exists and differs");
    expect(readFileSync(file, "utf8")).toBe(written);
    const forced = await lazarus([
      "service",
      "install",
      "--name",
      "lazarus-a",
      "--unit-dir",
      units,
      "--config",
      config,
      "--state-dir",
      "/srv/b",
      "--json",
    ]);
    expect(forced.exitCode).toBe(1);
    const replaced = await lazarus([
      "service",
      "install",
      "--force",
      "--json",
      "--name",
      "lazarus-a",
      "--unit-dir",
      units,
      "--config",
      config,
      "--state-dir",
      "/srv/b",
    ]);
    expect(replaced.exitCode, replaced.stderr).toBe(0);
    expect(JSON.parse(replaced.stdout)).toMatchObject({ path: file, written: true, changed: true });
    expect(readFileSync(path.join(units, "lazarus-a.env"), "utf8")).toContain('LAZARUS_STATE_DIR="/srv/b"');
  });

  it("its ExecStart, Environment and WorkingDirectory start a working daemon (a path with a space and a %)", async () => {
    const base = temp("lazarus-svc-run-");
    const config = configDir(
      {
        "cells.d/svc.yaml": cellYaml({
          name: "svc",
          ttl: "4h",
          members: [{ identity: "agent:allegro", command: ["node", AGENT] }],
        }),
      },
      path.join(base, "my config 100%"),
    );
    mkdirSync(config, { recursive: true });
    const state = path.join(base, "state $HOME");
    dirs.push(state);
    const r = await lazarus([
      "service",
      "install",
      "--unit-dir",
      path.join(base, "units %i"),
      "--config",
      config,
      "--state-dir",
      state,
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    const unit = readFileSync(path.join(base, "units %i", "lazarus.service"), "utf8");
    const [node, ...args] = execWords(directive(unit, "ExecStart")[0] as string);
    const env = unitEnvironment(unit);
    expect(env.LAZARUS_STATE_DIR).toBe(state);
    const cwd = execWords(directive(unit, "WorkingDirectory")[0] as string)[0] as string;
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

// A path no shell or systemd quoting passes by accident: a space, both quotes, a backslash, $, a
// backtick, % and a trailing blank.
const AWKWARD = "/opt/we ird \"q\" 'sq' \\b $HOME `x` 100% ";

describe("lazarus service install: the operator's host settings reach the service", () => {
  // One valid value for each setting of the table (a setting added to the table without one here
  // fails this test, so the table and what install carries cannot drift apart).
  const SAMPLES: Record<string, string> = {
    LAZARUS_STATE_DIR: "/srv/lz-state",
    LAZARUS_SECRETS_DIR: `${AWKWARD}secrets`,
    LAZARUS_CREDENTIAL_ENV_PREFIX: "OPS_,LAZARUS_SECRET_",
    LAZARUS_BACKENDS: "sandbox,container",
    LAZARUS_CHECKPOINT_MAX_SIZE: "4Gi",
    LAZARUS_DEFAULT_DISK: "2Gi",
    LAZARUS_MAX_DISK: "20Gi",
    LAZARUS_EGRESS_ALLOW: "api.anthropic.com,*.github.com:443",
    LAZARUS_EGRESS_CIDRS: "10.20.0.0/16",
    LAZARUS_EGRESS_HOSTS: `${AWKWARD}hosts`,
    LAZARUS_PROVIDERS: `${AWKWARD}providers.yaml`,
    LAZARUS_FORGES: `${AWKWARD}forges.yaml`,
    LAZARUS_HOST_NETWORK: "deny",
    LAZARUS_REMOTE_HOSTS: "relative/hosts.yaml",
    LAZARUS_REMOTE_INLINE: "deny",
    LAZARUS_SSH: "/usr/bin/ssh",
    LAZARUS_UID_RANGE: "256100-256199",
    LAZARUS_CGROUP_ROOT: "lazarus/prod",
    LAZARUS_CGROUP_MODE: "v2",
    LAZARUS_SANDBOX_BINDS: `/opt/tools:${AWKWARD}lib`,
    LAZARUS_CONTAINER_ENGINE: "podman",
    LAZARUS_PYTHON: `${AWKWARD}python3`,
    LAZARUS_LOG_MAX_SIZE: "20Mi",
    LAZARUS_LOG_KEEP: "5",
    LAZARUS_LOG_PUMP: "node",
    LAZARUS_SPAWNER: "perl",
    LAZARUS_MAX_MEMORY: "8Gi",
    LAZARUS_DEFAULT_MEMORY: "1Gi",
    LAZARUS_MAX_PIDS: "4096",
    LAZARUS_DEFAULT_PIDS: "512",
    LAZARUS_MAX_CPU: "1.5",
    LAZARUS_MAX_LOG_SIZE: "100Mi",
    LAZARUS_MAX_LOG_KEEP: "8",
    LAZARUS_MAX_CELLS: "50",
    LAZARUS_MAX_BUDGET_TOKENS: "5000000",
    LAZARUS_MAX_BUDGET_COST: "25.5",
    LAZARUS_GATEWAY: "on",
    LAZARUS_GATEWAY_PROVIDER_TOOLS: "web_search,mcp",
    LAZARUS_MAX_FILE_SIZE: "2Mi",
    LAZARUS_NO_PROGRESS: "1",
    LAZARUS_DEBUG: "0",
  };

  it("writes every host setting set in its environment to a 0600 EnvironmentFile the unit names, read back intact as systemd reads it", async () => {
    const config = configDir({}, temp("lazarus-svc-config-"));
    const units = temp("lazarus-svc-units-");
    const samples = Object.fromEntries(HOST_SETTINGS.map((s) => [s.name, SAMPLES[s.name]]));
    expect(
      Object.entries(samples)
        .filter(([, v]) => v === undefined)
        .map(([k]) => k),
    ).toEqual([]);
    const env = { ...(samples as Record<string, string>), LAZARUS_SECRET_TOKEN: "s3cret-value", OPS_KEY: "ops-value" };
    const r = await lazarus(
      ["service", "install", "--unit-dir", units, "--config", config, "--state-dir", "/srv/lz-state"],
      { env },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain("not carried into the service: LAZARUS_SECRET_TOKEN, OPS_KEY");
    const unit = readFileSync(path.join(units, "lazarus.service"), "utf8");
    const envFile = path.join(units, "lazarus.env");
    expect(directive(unit, "EnvironmentFile")).toEqual([envFile]);
    const st = statSync(envFile);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.uid).toBe(process.getuid?.());
    const text = readFileSync(envFile, "utf8");
    expect(text).not.toContain("s3cret-value");
    expect(text).not.toContain("ops-value");
    const seen = parseEnvironmentFile(text);
    // paths are made absolute (the unit's cwd is not the shell's); the rest is carried verbatim
    const expected = { ...samples, LAZARUS_REMOTE_HOSTS: path.resolve("relative/hosts.yaml") };
    expect(seen).toEqual(expected);
    if (analyze) expect(await verify(path.join(units, "lazarus.service"))).toBe("");
  });

  it("the installed service validates cells exactly as the shell that installed it (LAZARUS_BACKENDS=sandbox,container refuses backend: process in both)", async () => {
    const base = temp("lazarus-svc-same-");
    const secrets = path.join(base, AWKWARD.slice(1).replaceAll("/", "_"));
    mkdirSync(secrets, { recursive: true });
    writeFileSync(path.join(secrets, "token"), "t0ken\n");
    const config = configDir(
      {
        "cells.d/root.yaml": cellYaml({
          name: "root",
          extra: "  backend: process\n  network: host",
          members: [{ identity: "agent:a", command: ["true"] }],
        }),
        "cells.d/creds.yaml": cellYaml({
          name: "creds",
          extra: "  backend: sandbox\n  credentials:\n    TOKEN: {file: token}",
          members: [{ identity: "agent:b", command: ["true"] }],
        }),
        "cells.d/big.yaml": `${cellYaml({ name: "big", members: [{ identity: "agent:c", command: ["true"] }] })}# ${"x".repeat(5000)}\n`,
      },
      path.join(base, "config"),
    );
    const settings = {
      LAZARUS_BACKENDS: "sandbox,container",
      LAZARUS_HOST_NETWORK: "deny",
      LAZARUS_SECRETS_DIR: secrets,
      LAZARUS_MAX_FILE_SIZE: "4Ki",
    };
    const units = path.join(base, "units");
    const install = await lazarus(
      ["service", "install", "--unit-dir", units, "--config", config, "--state-dir", path.join(base, "state")],
      { env: settings },
    );
    expect(install.exitCode, install.stderr).toBe(0);
    const serviceEnv = unitEnvironment(readFileSync(path.join(units, "lazarus.service"), "utf8"));
    const validate = async (env: Record<string, string>): Promise<{ code: number | undefined; json: string }> => {
      const r = await execa(process.execPath, [CLI, "validate", "--json", "-c", config], {
        env,
        extendEnv: false,
        reject: false,
      });
      return { code: r.exitCode, json: String(r.stdout) };
    };
    const shell = await validate({
      PATH: process.env.PATH ?? "",
      NO_COLOR: "1",
      LAZARUS_STATE_DIR: path.join(base, "state"),
      ...settings,
    });
    const service = await validate(serviceEnv);
    expect(service).toEqual(shell);
    expect(shell.code).toBe(1);
    const diagnostics = (JSON.parse(shell.json) as { diagnostics: { file: string; field?: string; message: string }[] })
      .diagnostics;
    expect(
      diagnostics.some(
        (d) =>
          d.field === "spec.backend" &&
          d.message.includes("backend process is not allowed on this host (LAZARUS_BACKENDS=sandbox,container)"),
      ),
    ).toBe(true);
    expect(diagnostics.some((d) => d.field === "spec.network" && d.message.includes("LAZARUS_HOST_NETWORK=deny"))).toBe(
      true,
    );
    expect(diagnostics.some((d) => d.file.endsWith("big.yaml") && /over the 4096-byte limit/.test(d.message))).toBe(
      true,
    );
    expect(diagnostics.filter((d) => d.file.endsWith("creds.yaml") && /credential|secrets/.test(d.message))).toEqual(
      [],
    );
    // without the settings (what the unit carried before) the same cells pass where they must not
    const bare = await validate({ PATH: process.env.PATH ?? "", NO_COLOR: "1" });
    expect(bare.json).not.toContain("is not allowed on this host");
  });

  it("refuses a bad setting or a line break in one with a clear error, and writes nothing", async () => {
    const config = configDir({}, temp("lazarus-svc-config-"));
    const units = temp("lazarus-svc-units-");
    const cases: [Record<string, string>, string][] = [
      [{ LAZARUS_HOST_NETWORK: "Deny" }, 'LAZARUS_HOST_NETWORK "Deny" is not one of allow, deny'],
      [{ LAZARUS_BACKENDS: "sandbox,proces" }, 'LAZARUS_BACKENDS "sandbox,proces" names "proces", not a backend'],
      [{ LAZARUS_UID_RANGE: "5-1" }, 'LAZARUS_UID_RANGE "5-1" is not a range'],
      [
        { LAZARUS_SANDBOX_BINDS: "/opt/a\n/opt/b" },
        "LAZARUS_SANDBOX_BINDS holds a line break, which systemd's EnvironmentFile= cannot carry",
      ],
    ];
    for (const [env, message] of cases) {
      const r = await lazarus(["service", "install", "--unit-dir", units, "--config", config], { env });
      expect(r.exitCode, JSON.stringify(env)).toBe(1);
      expect(r.stderr).toContain(message);
      expect(r.stderr).toContain("nothing was written");
      expect(readdirSync(units)).toEqual([]);
    }
  });

  it("shows the settings in --dry-run, and names the credential variables it leaves out without their values", async () => {
    const config = configDir({}, temp("lazarus-svc-config-"));
    const r = await lazarus(
      ["service", "install", "--dry-run", "--config", config, "--settings-file", "/etc/lazarus/x.env"],
      { env: { LAZARUS_BACKENDS: "sandbox", LAZARUS_SECRET_API_KEY: "s3cret-value" } },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain("# and /etc/lazarus/x.env (mode 0600):");
    expect(r.stderr).toContain('#   LAZARUS_BACKENDS="sandbox"');
    expect(r.stderr).toMatch(
      /not carried into the service: LAZARUS_SECRET_API_KEY \(credential values never go into unit files; put each value in a file under the secrets dir/,
    );
    expect(r.stdout + r.stderr).not.toContain("s3cret-value");
    const json = await lazarus(
      ["service", "install", "--dry-run", "--json", "--config", config, "--settings-file", "/etc/lazarus/x.env"],
      { env: { LAZARUS_SECRET_API_KEY: "s3cret-value" } },
    );
    expect(JSON.parse(json.stdout).environmentFile).toMatchObject({
      path: "/etc/lazarus/x.env",
      notCarried: ["LAZARUS_SECRET_API_KEY"],
    });
    expect(json.stdout).not.toContain("s3cret-value");
    expect(existsSync("/etc/lazarus/x.env")).toBe(false);
  });

  it("the test's EnvironmentFile reader follows systemd's documented rules", () => {
    const text = [
      "# comment",
      "; also",
      "A=plain value  ",
      "B='single \\ $x'",
      'C="dq \\" \\\\ \\$ \\` \\n"',
      "D=un\\quoted\\",
      "  continued",
      "1BAD=x",
      " E = spaced",
    ].join("\n");
    expect(parseEnvironmentFile(text)).toEqual({
      A: "plain value",
      B: "single \\ $x",
      C: 'dq " \\ $ ` \\n',
      D: "unquoted  continued",
      E: "spaced",
    });
  });
});

describe("lazarus service uninstall", () => {
  it("removes only a unit it wrote, and not while it is enabled", async () => {
    const config = configDir({}, temp("lazarus-svc-config-"));
    const units = temp("lazarus-svc-units-");
    const file = path.join(units, "lazarus.service");
    expect(
      (await lazarus(["service", "install", "--unit-dir", units, "--config", config, "--state-dir", "/srv/a"]))
        .exitCode,
    ).toBe(0);
    mkdirSync(path.join(units, "multi-user.target.wants"));
    symlinkSync(file, path.join(units, "multi-user.target.wants", "lazarus.service"));
    const enabled = await lazarus(["service", "uninstall", "--unit-dir", units]);
    expect(enabled.exitCode).toBe(1);
    expect(enabled.stderr).toContain("systemctl disable --now lazarus.service");
    expect(existsSync(file)).toBe(true);
    await execa("rm", [path.join(units, "multi-user.target.wants", "lazarus.service")]);
    expect(existsSync(path.join(units, "lazarus.env"))).toBe(true);
    const removed = await lazarus(["service", "uninstall", "--unit-dir", units]);
    expect(removed.exitCode, removed.stderr).toBe(0);
    expect(removed.stdout).toContain("Next: systemctl daemon-reload");
    expect(existsSync(file)).toBe(false);
    expect(existsSync(path.join(units, "lazarus.env"))).toBe(false); // the settings go with the unit
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
