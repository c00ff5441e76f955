// Running git in a cell's project/ (the close log) without running anything a member put there.
// A repository's config and attributes are the member's: they can name programs git runs (core.fsmonitor,
// hooks, filter.<driver>.clean/process, diff drivers, textconv, pagers, gpg, ssh) and pull in other
// files (include.path). So git gets a minimal environment (no host HOME, tokens or global/system
// config), command-line overrides for every program-running key git reads while listing changes,
// no optional locks (status writes no index, so no post-index-change hook), a timeout and an
// output cap; and a repository whose config names any program or include is not run at all.
import { rmSync } from "node:fs";
import { lstat, mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { execa } from "../util/exec.js";
import { fileKind, KiB, MiB, readUntrusted } from "../util/safe-fs.js";

const TIMEOUT_MS = 10_000;
const MAX_OUTPUT = 4 * MiB;

// Keys whose presence in a repository config means git might run a program, read another file or
// connect elsewhere than asked (a credential helper, url.*.insteadOf and pushInsteadOf, a protocol
// allowed, remote.*.uploadpack/receivepack), matched case-insensitively anywhere in the text:
// over-matching only means the mtime listing, or no push (an event says why).
const RISKY =
  /fsmonitor|hookspath|include|pager|external|textconv|sshcommand|filter|showsignature|gpg|program|command|askpass|editor|worktreeconfig|driver|proxy|virtualfilesystem|credential|insteadof|protocol|uploadpack|receivepack/i;

// Always set on the command line, which outranks the repository's config.
const OVERRIDES = [
  "core.fsmonitor=false",
  "core.hooksPath=/dev/null",
  "core.untrackedCache=false",
  "core.attributesFile=/dev/null",
  "core.pager=cat",
  "core.sshCommand=false",
  "log.showSignature=false",
  "submodule.recurse=false",
  "diff.ignoreSubmodules=all",
  "status.submoduleSummary=false",
  "protocol.allow=never",
];

let globalConfig: Promise<string> | undefined;

// A global config of Lazarus's own (instead of the host user's): it only trusts every directory,
// since project/ may belong to the cell's uid (protected config; git ignores this key in a repository).
function trustingGlobalConfig(): Promise<string> {
  globalConfig ??= (async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "lazarus-git-"));
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, "config");
    await writeFile(file, "[safe]\n\tdirectory = *\n", { mode: 0o644 });
    return file;
  })();
  return globalConfig;
}

// The environment git runs with: nothing of Lazarus's own but PATH (the forge push uses it too).
export async function gitEnv(project: string, hostEnv: NodeJS.ProcessEnv): Promise<Record<string, string>> {
  return {
    PATH: hostEnv.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    HOME: "/nonexistent",
    XDG_CONFIG_HOME: "/nonexistent",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: await trustingGlobalConfig(),
    GIT_ATTR_NOSYSTEM: "1",
    GIT_TERMINAL_PROMPT: "0",
    GIT_OPTIONAL_LOCKS: "0",
    GIT_NO_REPLACE_OBJECTS: "1",
    GIT_CEILING_DIRECTORIES: path.dirname(project),
    LC_ALL: "C",
  };
}

// Why git must not be run in this project/ at all, or undefined when it may be.
export async function gitRefusal(project: string): Promise<string | undefined> {
  const gitDir = path.join(project, ".git");
  const st = await lstat(gitDir).catch(() => undefined);
  if (!st) return "project/.git is missing";
  if (!st.isDirectory()) return `project/.git is a ${fileKind(st)}, not a directory`;
  for (const f of ["commondir", "config.worktree"]) {
    if (await lstat(path.join(gitDir, f)).catch(() => undefined)) return `project/.git/${f} points git elsewhere`;
  }
  const config = await readUntrusted(path.join(gitDir, "config"), 64 * KiB, project);
  if (!config.ok) return config.missing ? undefined : `project/.git/config ${config.reason}`;
  const risky = RISKY.exec(config.text);
  if (!risky) return undefined;
  const key = await riskyKey(config.text);
  if (key === "") return undefined; // the word is only in a subsection or a value: a branch "fix-proxy"
  const what = key ? `sets ${key}` : `mentions "${risky[0]}"`;
  return `project/.git/config ${what}, which can make git run a program, read another file or connect elsewhere`;
}

// The first key of a config text that RISKY matches, as git parses it (never following an include),
// its subsection shown as * (a URL, a token in it, stays out of the message); "" when git parses the
// text and no key matches (the word was in a subsection or a value), undefined when git cannot parse it.
async function riskyKey(text: string): Promise<string | undefined> {
  const r = await execa("git", ["config", "--no-includes", "--file", "-", "--list", "--name-only", "--null"], {
    env: { PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin", HOME: "/nonexistent", GIT_CONFIG_NOSYSTEM: "1" },
    extendEnv: false,
    input: text,
    cwd: "/",
    reject: false,
    timeout: TIMEOUT_MS,
    maxBuffer: MAX_OUTPUT,
  });
  if (r.exitCode !== 0) return undefined;
  for (const name of String(r.stdout).split("\0")) {
    const first = name.indexOf(".");
    const last = name.lastIndexOf(".");
    const key = first === last ? name : `${name.slice(0, first)}.*${name.slice(last)}`;
    if (RISKY.test(key.replace(".*.", "."))) return key;
  }
  return "";
}

// Run git in project/ as described above; throws on failure, timeout or too much output.
// bounds: a tighter timeout and output cap than the close log's; okCodes: exit codes besides 0
// that are an answer (show-ref's 1: no refs).
export async function memberGit(
  project: string,
  args: string[],
  hostEnv: NodeJS.ProcessEnv = process.env,
  bounds: { timeoutMs?: number; maxBuffer?: number; okCodes?: number[] } = {},
): Promise<string> {
  const r = await execa(
    "git",
    ["--no-pager", "--no-optional-locks", ...OVERRIDES.flatMap((o) => ["-c", o]), "-C", project, ...args],
    {
      env: await gitEnv(project, hostEnv),
      extendEnv: false,
      stdin: "ignore",
      timeout: bounds.timeoutMs ?? TIMEOUT_MS,
      killSignal: "SIGKILL",
      maxBuffer: bounds.maxBuffer ?? MAX_OUTPUT,
      ...(bounds.okCodes ? { reject: false } : {}),
    },
  );
  if (bounds.okCodes && r.exitCode !== 0 && !bounds.okCodes.includes(r.exitCode ?? -1)) {
    const why = r.timedOut
      ? `timed out after ${bounds.timeoutMs ?? TIMEOUT_MS} ms`
      : r.isMaxBuffer
        ? `wrote more than ${bounds.maxBuffer ?? MAX_OUTPUT} bytes`
        : `exited with ${r.exitCode ?? r.signal}`;
    throw new Error(`git ${args[0]} ${why}`);
  }
  return r.stdout;
}

// `git status` and `git log` arguments that run no external program.
export const STATUS_ARGS = ["status", "--porcelain", "--ignore-submodules=all", "--no-renames"];
export const LOG_ARGS = [
  "log",
  "--no-show-signature",
  "--no-ext-diff",
  "--no-textconv",
  "--no-renames",
  "--no-color",
  "--name-only",
  "--format=%H %s",
];

// The branch project/ is on ("HEAD" when detached); reads no config that runs a program.
export const BRANCH_ARGS = ["rev-parse", "--abbrev-ref", "HEAD"];
