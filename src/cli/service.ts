// lazarus service install|uninstall: a systemd unit that runs `lazarus watch`.
// The unit is written, never started, unless --now is given (then systemctl daemon-reload and
// enable --now run, as the operator would type them). docs/operations.md explains the choices.
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, readFileSync, readdirSync, realpathSync, statSync } from "node:fs";
import { chown, mkdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command, CommanderError, Option } from "commander";
import { execa } from "execa";
import { isGitUrl } from "../gitops/git.js";
import { writeFileAtomic } from "../util/fsx.js";
import { LazarusError } from "../util/errors.js";
import { action, err, out } from "./common.js";
import { typedOption } from "./flags.js";
import { ENV_FILE_MARKER, notCarriedNote, renderEnvFile, serviceEnvironment } from "./service-env.js";

export const UNIT_MARKER = "# Written by `lazarus service install`";

export interface UnitOptions {
  user: boolean; // a user unit (systemctl --user) rather than a system one
  node: string; // absolute path of the node binary
  cli: string; // absolute path of dist/cli.js
  version: string;
  watchArgs: string[]; // what follows `lazarus watch`
  workingDirectory: string;
  env: Record<string, string>; // Environment= (PATH)
  envFile: string; // EnvironmentFile=: the host settings (service-env.ts)
  systemdVersion?: number; // the host's; RestartSteps= needs 254
}

// One ExecStart= word: bare when plain, else double-quoted; % and $ are systemd specifiers/variables.
function execWord(word: string): string {
  const escaped = word.replaceAll("%", "%%").replaceAll("$", "$$$$");
  return /^[A-Za-z0-9_./:=,+@-]+$/.test(escaped)
    ? escaped
    : `"${escaped.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

// One Environment= assignment, quoted (Environment= does not expand $, but does expand %).
function envAssignment(key: string, value: string): string {
  return `"${`${key}=${value}`.replaceAll("%", "%%").replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

export function renderUnit(o: UnitOptions): string {
  const backoff =
    (o.systemdVersion ?? 0) >= 254
      ? [
          "# a crash loop backs off: 5s, then longer each time, up to 5 minutes between attempts",
          "RestartSteps=10",
          "RestartMaxDelaySec=5min",
        ]
      : ["# (systemd < 254 has no RestartSteps=: StartLimit* in [Unit] bounds a crash loop instead)"];
  const lines = [
    `${UNIT_MARKER} (lazarus ${o.version}).`,
    "# Regenerate it with `lazarus service install --force ...` rather than editing; local changes",
    "# belong in a drop-in (systemctl edit). See docs/operations.md.",
    "[Unit]",
    "Description=Lazarus: keep the agent cells converged (lazarus watch)",
    "After=network-online.target",
    "Wants=network-online.target",
    "# at most 10 failed starts in 10 minutes, then systemd gives up until `systemctl reset-failed`",
    "StartLimitIntervalSec=10min",
    "StartLimitBurst=10",
    "",
    "[Service]",
    "Type=exec",
    `ExecStart=${[o.node, o.cli, "watch", ...o.watchArgs].map(execWord).join(" ")}`,
    "# SIGHUP: re-read every file and reconcile every cell",
    "ExecReload=/bin/kill -HUP $MAINPID",
    `WorkingDirectory=${execWord(o.workingDirectory)}`,
    ...Object.entries(o.env).map(([k, v]) => `Environment=${envAssignment(k, v)}`),
    "# the operator's host settings (LAZARUS_*), as they were where `lazarus service install` ran;",
    "# a missing file fails the start rather than run cells without the operator's bounds",
    `EnvironmentFile=${o.envFile.replaceAll("%", "%%")}`,
    "Environment=NO_COLOR=1",
    "SyslogIdentifier=lazarus",
    "Restart=on-failure",
    "RestartSec=5s",
    ...backoff,
    "# Members are spawned detached (their own session and process group) precisely so that they",
    "# outlive the daemon: stopping, restarting or upgrading Lazarus must not stop the agents. Member",
    "# processes of the process backend stay in this unit's cgroup, and the default",
    "# KillMode=control-group would SIGTERM them with the daemon. KillMode=process signals only the",
    "# daemon; it finishes the action in progress, leaves the members running, and the next start",
    "# adopts them (systemd logs them as left-over processes: that is expected). Closing a cell",
    "# (state: closed, or its ttl) is how members are stopped.",
    "KillMode=process",
    "# an action in progress (a checkpoint, a member's stop timeout) may take a while; a kill past",
    "# this is still safe (the per-cell journal completes it on the next start)",
    "TimeoutStopSec=2min",
    "# a member killed by the kernel's OOM killer must not take the daemon down with it",
    "OOMPolicy=continue",
    "# process-backend members count against this unit's task limit (default 15% of pid_max)",
    "TasksMax=infinity",
    "# the file watcher and many members' logs",
    "LimitNOFILE=65536",
    "# Hardening: deliberately little. Every sandboxing directive of systemd applies to the members",
    "# too (they inherit the daemon's namespaces, seccomp filter and capabilities), and Lazarus runs",
    "# bwrap, podman and cgroup writes as root: ProtectSystem=, ProtectHome=, PrivateTmp= (the cells",
    "# and `lazarus status` must see the same /tmp), PrivateDevices=, ProtectControlGroups=,",
    "# ProtectKernelTunables=, RestrictNamespaces=, NoNewPrivileges=, CapabilityBoundingSet= and",
    "# MemoryDenyWriteExecute= (node's JIT) would each break a backend or the members. Isolation",
    "# belongs to the cells (backend: sandbox or container), not to this unit.",
    "UMask=0022",
    "",
    "[Install]",
    `WantedBy=${o.user ? "default.target" : "multi-user.target"}`,
    "",
  ];
  return lines.join("\n");
}

// The installed Lazarus: the CLI next to this module (dist/cli.js), links resolved.
export function cliPath(): string {
  const cli = fileURLToPath(new URL("../cli.js", import.meta.url));
  try {
    return realpathSync(cli);
  } catch {
    return cli;
  }
}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string })
      .version;
  } catch {
    return "unknown";
  }
}

// The host's systemd version (`systemctl --version` only reads), when there is one.
function systemdVersion(): number | undefined {
  const r = spawnSync("systemctl", ["--version"], { encoding: "utf8", timeout: 5000 });
  const m = /^systemd (\d+)/.exec(r.stdout ?? "");
  return m ? Number(m[1]) : undefined;
}

function defaultUnitDir(user: boolean): string {
  if (!user) return "/etc/systemd/system";
  return path.join(process.env.XDG_CONFIG_HOME || path.join(os.homedir(), ".config"), "systemd", "user");
}

// Where the host settings go: /etc/lazarus/NAME.env, or ~/.config/lazarus/NAME.env with --user;
// beside the unit when --unit-dir names where that goes.
function defaultEnvFile(user: boolean, name: string, unitDir?: string): string {
  if (unitDir) return path.join(path.resolve(unitDir), `${name}.env`);
  const dir = user
    ? path.join(process.env.XDG_CONFIG_HOME || path.join(os.homedir(), ".config"), "lazarus")
    : "/etc/lazarus";
  return path.join(dir, `${name}.env`);
}

function defaultStateDir(user: boolean): string {
  if (!user) return "/var/lib/lazarus";
  return path.join(process.env.XDG_STATE_HOME || path.join(os.homedir(), ".local", "state"), "lazarus");
}

// systemd's PATH for services, with the installing node's directory first when it is elsewhere: members (which get
// PATH from the daemon) that run `node` find the same one even when it lives in ~/.nvm or /opt.
const SYSTEMD_PATH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
export function servicePath(node: string): string {
  const dir = path.dirname(node);
  return (SYSTEMD_PATH.includes(dir) ? SYSTEMD_PATH : [dir, ...SYSTEMD_PATH]).join(":");
}

const UNIT_NAME = /^[A-Za-z0-9_.:-]+$/;

function unitFile(o: { user?: boolean; name: string; unitDir?: string }): { dir: string; file: string; unit: string } {
  if (!UNIT_NAME.test(o.name))
    throw new LazarusError(
      "BAD_ARGS",
      `--name "${o.name}" is not a unit name: use letters, digits and _ . : - (e.g. lazarus or lazarus-prod)`,
    );
  const unit = `${o.name}.service`;
  const dir = path.resolve(o.unitDir ?? defaultUnitDir(o.user ?? false));
  return { dir, file: path.join(dir, unit), unit };
}

// A git URL stays as written; a local repo path is made absolute (the unit's cwd is not the shell's).
function repoArg(repo: string): string {
  return isGitUrl(repo) ? repo : path.resolve(repo);
}

// Check the watch arguments as `lazarus watch` will parse them, so a typo fails now, not at boot.
async function checkWatchArgs(args: string[]): Promise<void> {
  const { watchCommand } = await import("./watch.js");
  const cmd = watchCommand();
  cmd.exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  cmd.action(() => undefined);
  try {
    await cmd.parseAsync(args, { from: "user" });
  } catch (e) {
    const what = e instanceof CommanderError ? e.message.replace(/^error: /, "") : String(e);
    throw new LazarusError(
      "BAD_ARGS",
      `the watch arguments ${JSON.stringify(args)} are not valid for \`lazarus watch\`: ${what}; see lazarus watch --help`,
    );
  }
}

interface InstallOpts {
  user?: boolean;
  dryRun?: boolean;
  force?: boolean;
  now?: boolean;
  json?: boolean;
  name: string;
  unitDir?: string;
  config?: string;
  repo?: string;
  ref?: string;
  path?: string;
  stateDir?: string;
  secretsDir?: string;
  settingsFile?: string;
  metricsPort?: number;
  metricsHost?: string;
}

const systemctl = (user: boolean, ...args: string[]): string[] => (user ? ["--user", ...args] : args);
const shown = (argv: string[]): string => ["systemctl", ...argv].join(" ");

async function run(argv: string[]): Promise<void> {
  const r = await execa("systemctl", argv, { reject: false, stdio: ["ignore", "inherit", "inherit"] });
  if (r.exitCode !== 0)
    throw new LazarusError(
      "SYSTEMCTL_FAILED",
      `${shown(argv)} failed (exit ${r.exitCode ?? r.signal}); the unit file is in place, fix the cause and run it again`,
    );
}

function installCommand(): Command {
  return new Command("install")
    .description("write a systemd unit that runs `lazarus watch` (prints the systemctl commands that start it)")
    .argument(
      "[watch-args...]",
      "more `lazarus watch` options, after --, e.g. -- --log-level debug --tick '*/10 * * * * *'",
    )
    .option(
      "--user",
      "a user unit (~/.config/systemd/user, systemctl --user) instead of a system one (/etc/systemd/system)",
    )
    .option("--dry-run", "print the unit and where it would go; write nothing")
    .option("--force", "replace an existing unit that differs")
    .option("--now", "then run systemctl daemon-reload and systemctl enable --now")
    .option("--json", "print {unit, path, written, changed, next} as JSON")
    .option("--name <name>", "the unit's name", "lazarus")
    .option("--unit-dir <dir>", "write the unit here instead of the systemd default for --user or system")
    .option("-c, --config <dir>", "directory holding cells.d/ and portfolios/ (made absolute; default .)")
    .option("--repo <url|path>", "follow this git repo (GitOps) instead of a config dir")
    .option("--ref <ref>", "with --repo: the branch or tag to follow (default main)")
    .option("--path <subdir>", "with --repo: the directory holding cells.d/ and portfolios/")
    .option(
      "-s, --state-dir <dir>",
      "state directory (default $LAZARUS_STATE_DIR, else /var/lib/lazarus, or ~/.local/state/lazarus with --user)",
    )
    .option("--secrets-dir <dir>", "the only directory file credentials are read from (default $LAZARUS_SECRETS_DIR)")
    .option(
      "--settings-file <file>",
      "where the host settings (LAZARUS_*) go, mode 0600 (default /etc/lazarus/NAME.env, ~/.config/lazarus/NAME.env with --user, or beside the unit with --unit-dir)",
    )
    .addOption(
      typedOption("--metrics-port <port>", "serve Prometheus /metrics and /healthz on this port", {
        kind: "int",
        min: 0,
        max: 65535,
      }),
    )
    .addOption(new Option("--metrics-host <host>", "with --metrics-port: the address to serve on (default 127.0.0.1)"))
    .action(action(runInstall));
}

// --config and --repo exclude each other, --ref and --path need --repo, --dry-run excludes --now.
function checkInstallFlags(o: InstallOpts): void {
  if (o.repo && o.config)
    throw new LazarusError(
      "BAD_ARGS",
      "--config and --repo exclude each other: the daemon follows a local config dir or a git repo",
    );
  if (!o.repo && (o.ref || o.path)) throw new LazarusError("BAD_ARGS", "--ref and --path go with --repo");
  if (o.dryRun && o.now) throw new LazarusError("BAD_ARGS", "--dry-run and --now exclude each other");
}

// What follows `lazarus watch` in ExecStart=, and the unit's working directory: the repo to follow
// (cwd the state dir), or the config dir made absolute (cwd the config dir, which must exist).
function watchInvocation(o: InstallOpts, stateDir: string, extra: string[]) {
  const watchArgs: string[] = [];
  let workingDirectory = stateDir;
  if (o.repo) {
    watchArgs.push("--repo", repoArg(o.repo));
    if (o.ref) watchArgs.push("--ref", o.ref);
    if (o.path) watchArgs.push("--path", o.path);
  } else {
    const config = path.resolve(o.config ?? ".");
    if (!existsSync(config) || !statSync(config).isDirectory())
      throw new LazarusError(
        "BAD_ARGS",
        `the config dir ${config} does not exist; pass --config <dir> (the directory holding cells.d/) or --repo <url>`,
      );
    if (!existsSync(path.join(config, "cells.d")))
      err(`warning: ${config} has no cells.d/ yet; the daemon watches for it`);
    watchArgs.push("--config", config);
    workingDirectory = config;
  }
  if (o.metricsPort !== undefined) watchArgs.push("--metrics-port", String(o.metricsPort));
  if (o.metricsHost !== undefined) watchArgs.push("--metrics-host", o.metricsHost);
  watchArgs.push(...extra);
  return { watchArgs, workingDirectory };
}

// A unit file is line-based: no word it carries may hold a line break.
function refuseLineBreaks(words: string[]): void {
  for (const word of words) {
    if (/[\n\r\0]/.test(word))
      throw new LazarusError("BAD_ARGS", `${JSON.stringify(word)} holds a line break: a unit file cannot carry it`);
  }
}

// Everything install would write, and how it compares with what is on disk; nothing written yet.
async function planInstall(extra: string[], o: InstallOpts) {
  checkInstallFlags(o);
  const user = o.user ?? false;
  const target = unitFile({ user, name: o.name, ...(o.unitDir ? { unitDir: o.unitDir } : {}) });
  const stateDir = path.resolve(o.stateDir ?? (process.env.LAZARUS_STATE_DIR || defaultStateDir(user)));
  const secretsDir = o.secretsDir ?? (process.env.LAZARUS_SECRETS_DIR || undefined);
  const { watchArgs, workingDirectory } = watchInvocation(o, stateDir, extra);
  await checkWatchArgs(watchArgs);
  const envFile = path.resolve(o.settingsFile ?? defaultEnvFile(user, o.name, o.unitDir));
  refuseLineBreaks([...watchArgs, stateDir, secretsDir ?? "", envFile, process.execPath, cliPath()]);
  const environment = serviceEnvironment(process.env, { stateDir, ...(secretsDir ? { secretsDir } : {}) });
  const envText = renderEnvFile(target.unit, environment.vars);
  const sdVersion = systemdVersion();
  const unit = renderUnit({
    user,
    node: process.execPath,
    cli: cliPath(),
    version: packageVersion(),
    watchArgs,
    workingDirectory,
    env: { PATH: servicePath(process.execPath) },
    envFile,
    ...(sdVersion !== undefined ? { systemdVersion: sdVersion } : {}),
  });
  const existing = existsSync(target.file) ? readFileSync(target.file, "utf8") : undefined;
  const existingEnv = existsSync(envFile) ? readFileSync(envFile, "utf8") : undefined;
  const unitChanged = existing !== unit;
  const envChanged = existingEnv !== envText;
  return {
    user,
    target,
    stateDir,
    unit,
    existing,
    unitChanged,
    envFile,
    envText,
    existingEnv,
    envChanged,
    changed: unitChanged || envChanged,
    note: notCarriedNote(environment.notCarried),
    next: [shown(systemctl(user, "daemon-reload")), shown(systemctl(user, "enable", "--now", target.unit))],
    environmentFile: {
      path: envFile,
      text: envText,
      settings: Object.keys(environment.vars),
      notCarried: environment.notCarried,
    },
  };
}

type InstallPlan = Awaited<ReturnType<typeof planInstall>>;

// --dry-run: the unit on stdout, where it and the settings file would go (and whether they differ) on stderr.
function printDryRun(p: InstallPlan, json: boolean): void {
  const { unit, target, environmentFile, changed, next } = p;
  if (json) {
    out(JSON.stringify({ unit, path: target.file, environmentFile, written: false, changed, next }, null, 2));
    return;
  }
  const state = (old: string | undefined, differs: boolean): string =>
    old === undefined ? "" : differs ? " (replacing a different one: needs --force)" : " (unchanged)";
  err(`# would write ${target.file}${state(p.existing, p.unitChanged)}`);
  err(`# and ${p.envFile} (mode 0600)${state(p.existingEnv, p.envChanged)}:`);
  err(
    p.envText
      .trimEnd()
      .split("\n")
      .map((l) => `#   ${l}`)
      .join("\n"),
  );
  if (p.note) err(`# ${p.note}`);
  out(unit);
}

// Write the settings file and the unit where they changed; a different one already there needs --force.
async function writeInstall(p: InstallPlan, force: boolean): Promise<void> {
  const differs = [
    p.unitChanged && p.existing !== undefined ? p.target.file : "",
    p.envChanged && p.existingEnv !== undefined ? p.envFile : "",
  ].filter(Boolean);
  if (differs.length && !force) {
    throw new LazarusError(
      "UNIT_EXISTS",
      `${differs.join(" and ")} exists and differs from what Lazarus would write; see it with --dry-run, then replace it with --force (or pick another --name)`,
    );
  }
  if (p.envChanged) await writeEnvFile(p.envFile, p.envText, p.user);
  if (p.unitChanged) {
    await mkdir(p.target.dir, { recursive: true });
    await writeFileAtomic(p.target.file, p.unit, 0o644);
  }
}

// What was written, and the systemctl commands that start it (or that it was started, with --now).
function printInstalled(p: InstallPlan, o: InstallOpts): void {
  const { unit, target, environmentFile, changed, next, user } = p;
  if (o.json) {
    const shownNext = o.now ? [] : next;
    out(
      JSON.stringify({ unit, path: target.file, environmentFile, written: changed, changed, next: shownNext }, null, 2),
    );
    return;
  }
  out(
    changed
      ? `Wrote ${[p.unitChanged ? target.file : "", p.envChanged ? p.envFile : ""].filter(Boolean).join(" and ")}.`
      : `${target.file} is already this unit.`,
  );
  out(`State dir: ${p.stateDir} (export LAZARUS_STATE_DIR=${p.stateDir} so lazarus status and plan look there too).`);
  if (o.now) out(`Started: ${shown(systemctl(user, "status", target.unit))} shows it.`);
  else out(`Next: ${next.join(" && ")}`);
}

// service install: plan the unit and its settings file, then print (--dry-run) or write them,
// and with --now reload systemd and enable the unit.
async function runInstall(extra: string[], o: InstallOpts): Promise<number> {
  const p = await planInstall(extra, o);
  if (o.dryRun) {
    printDryRun(p, o.json ?? false);
    return 0;
  }
  await writeInstall(p, o.force ?? false);
  if (p.note) err(`warning: ${p.note}`);
  if (o.now)
    for (const argv of [systemctl(p.user, "daemon-reload"), systemctl(p.user, "enable", "--now", p.target.unit)])
      await run(argv);
  printInstalled(p, o);
  return 0;
}

// The settings file: mode 0600, atomically; a system unit's is root's (a rewrite keeps the owner
// of the file it replaces, so the owner is set again).
async function writeEnvFile(file: string, text: string, user: boolean): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  await writeFileAtomic(file, text, 0o600);
  if (!user && process.getuid?.() === 0) await chown(file, 0, 0);
}

// The EnvironmentFile= a unit names, when Lazarus wrote both.
function unitEnvFile(unitText: string): string | undefined {
  const line = unitText.split("\n").find((l) => l.startsWith("EnvironmentFile="));
  const file = line?.slice("EnvironmentFile=".length).replaceAll("%%", "%");
  if (!file || !existsSync(file)) return undefined;
  return readFileSync(file, "utf8").startsWith(ENV_FILE_MARKER) ? file : undefined;
}

// Enabled: a link to the unit in a *.wants/ (or *.requires/) dir beside it.
function enabledLinks(dir: string, unit: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((d) => d.endsWith(".wants") || d.endsWith(".requires"))
    .map((d) => path.join(dir, d, unit))
    .filter((p) => lstatSync(p, { throwIfNoEntry: false }) !== undefined);
}

function uninstallCommand(): Command {
  return new Command("uninstall")
    .description("remove the unit `lazarus service install` wrote; the cells keep running")
    .option("--user", "the user unit (~/.config/systemd/user)")
    .option("--now", "first run systemctl disable --now (stops the daemon; members keep running), then daemon-reload")
    .option("--force", "remove a unit Lazarus did not write, or one still enabled")
    .option("--dry-run", "say what would be removed; remove nothing")
    .option("--name <name>", "the unit's name", "lazarus")
    .option("--unit-dir <dir>", "where the unit is, instead of the systemd default for --user or system")
    .action(
      action(
        async (o: {
          user?: boolean;
          now?: boolean;
          force?: boolean;
          dryRun?: boolean;
          name: string;
          unitDir?: string;
        }) => {
          const user = o.user ?? false;
          const target = unitFile({ user, name: o.name, ...(o.unitDir ? { unitDir: o.unitDir } : {}) });
          if (!existsSync(target.file))
            throw new LazarusError(
              "NOT_FOUND",
              `${target.file} does not exist: nothing to uninstall${user ? "" : " (a user unit? add --user)"}`,
            );
          const unitText = readFileSync(target.file, "utf8");
          if (!unitText.startsWith(UNIT_MARKER) && !o.force) {
            throw new LazarusError(
              "NOT_OURS",
              `${target.file} was not written by lazarus service install; remove it yourself, or pass --force`,
            );
          }
          const links = enabledLinks(target.dir, target.unit);
          if (links.length > 0 && !o.now && !o.force) {
            throw new LazarusError(
              "ENABLED",
              `${target.unit} is enabled (${links.join(", ")}); run ${shown(systemctl(user, "disable", "--now", target.unit))} first, or pass --now`,
            );
          }
          const envFile = unitEnvFile(unitText);
          const removed = [target.file, ...(envFile ? [envFile] : [])].join(" and ");
          if (o.dryRun) {
            out(`Would remove ${removed}.`);
            return 0;
          }
          if (o.now) await run(systemctl(user, "disable", "--now", target.unit));
          await rm(target.file);
          if (envFile) await rm(envFile, { force: true });
          if (o.now) await run(systemctl(user, "daemon-reload"));
          out(`Removed ${removed}. The cells and their state dir are untouched.`);
          if (!o.now) out(`Next: ${shown(systemctl(user, "daemon-reload"))}`);
          return 0;
        },
      ),
    );
}

export function serviceCommand(): Command {
  return new Command("service")
    .description("run `lazarus watch` under systemd: install or uninstall its unit")
    .addCommand(installCommand())
    .addCommand(uninstallCommand());
}
