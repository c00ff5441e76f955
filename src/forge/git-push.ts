// Pushing a cell's branch to its forge without trusting project/. project/ is written by members:
// its .git/config can name programs (core.fsmonitor, hooks, credential helpers, ssh commands),
// redirect a URL (url.*.insteadOf, token included), set a proxy, a pushurl; its refs can be links;
// its objects can borrow from other repositories or be huge. So git never pushes from project/:
// Lazarus reads the branch's commit with the close log's hardened git (src/apply/member-git.ts),
// refuses a repository that could point git elsewhere, bounds what it reaches, fetches the branch
// into a bare repository of its own under the state dir (no hooks, objects checked), and pushes
// from there, to the URL of the operator's forge table, never forced. The token reaches git only
// through its environment (GIT_CONFIG_COUNT: an http.extraHeader), never argv, a URL or a file.
import { lstat, mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { gitEnv, gitRefusal, memberGit } from "../apply/member-git.js";
import { execa } from "../util/exec.js";
import { LazarusError, errorMessage } from "../util/errors.js";
import { fileKind, MiB } from "../util/safe-fs.js";

export const PUSH_BOUNDS = {
  readTimeoutMs: 60_000, // reading the branch's commit and measuring what it reaches, in project/
  fetchTimeoutMs: 120_000, // copying it into Lazarus's own repository
  pushTimeoutMs: 120_000, // the push to the forge
  maxBytes: 1024 * MiB, // the objects the branch reaches, as stored in project/
} as const;

// What went wrong, and what follows: rejected (the forge refused the update: the remote branch
// diverged, a protected branch; never forced, never retried for this checkpoint), permanent (a
// token refused, no such repository, a project/ Lazarus will not read: not retried), transient
// (the network, 5xx, 429, a timeout: tried again with backoff).
export type PushFailure = "rejected" | "permanent" | "transient";
export class PushError extends LazarusError {
  constructor(
    message: string,
    readonly failure: PushFailure,
  ) {
    super("PUSH_FAILED", message);
  }
}

// Why project/'s branch must not be read for a push, or undefined when it may be.
export async function branchRefusal(project: string, branch: string): Promise<string | undefined> {
  const top = await lstat(project).catch(() => undefined);
  if (!top) return "project/ is missing";
  if (!top.isDirectory()) return `project/ is a ${fileKind(top)}`;
  const refused = await gitRefusal(project);
  if (refused) return refused;
  const gitDir = path.join(project, ".git");
  for (const f of ["HEAD", "refs", "packed-refs", "objects", "objects/info", "refs/heads"]) {
    const st = await lstat(path.join(gitDir, f)).catch(() => undefined);
    if (st?.isSymbolicLink()) return `project/.git/${f} is a symbolic link`;
  }
  for (const f of ["objects/info/alternates", "objects/info/http-alternates"]) {
    if (await lstat(path.join(gitDir, f)).catch(() => undefined))
      return `project/.git/${f} borrows objects from another repository`;
  }
  let p = path.join(gitDir, "refs", "heads");
  for (const seg of branch.split("/")) {
    p = path.join(p, seg);
    const st = await lstat(p).catch(() => undefined);
    if (st?.isSymbolicLink()) return `project/.git/${path.relative(gitDir, p)} is a symbolic link`;
  }
  return undefined;
}

// The branch's commit in project/ (undefined: no such branch), refused when what it reaches is
// larger than the bound. Read with the close log's hardened git.
export async function branchTip(project: string, branch: string): Promise<string | undefined> {
  const bounds = { timeoutMs: PUSH_BOUNDS.readTimeoutMs, maxBuffer: MiB };
  const out = await memberGit(
    project,
    ["rev-parse", "--verify", "--quiet", `refs/heads/${branch}^{commit}`],
    process.env,
    {
      ...bounds,
      okCodes: [1],
    },
  );
  const sha = out.trim();
  if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(sha)) return undefined;
  const du = await memberGit(project, ["rev-list", "--objects", "--disk-usage", sha], process.env, bounds);
  const bytes = Number(du.trim());
  if (!Number.isFinite(bytes) || bytes > PUSH_BOUNDS.maxBytes)
    throw new PushError(
      `branch ${branch} reaches ${du.trim()} bytes of objects, more than the ${PUSH_BOUNDS.maxBytes} Lazarus pushes`,
      "permanent",
    );
  return sha;
}

// Always on Lazarus's own repository's command line: no hooks, no program from any config, objects
// checked as they arrive, no redirect followed (the token would go with it), no credential helper.
const OVERRIDES = [
  "core.hooksPath=/dev/null",
  "core.fsmonitor=false",
  "core.sshCommand=false",
  "credential.helper=",
  "http.followRedirects=false",
  "fetch.fsckObjects=true",
  "transfer.fsckObjects=true",
  "gc.auto=0",
  "maintenance.auto=false",
  "protocol.allow=never",
];

interface Ran {
  code: number | undefined;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

async function ownGit(repo: string, args: string[], extraEnv: Record<string, string>, timeoutMs: number): Promise<Ran> {
  const r = await execa("git", ["--no-pager", ...OVERRIDES.flatMap((o) => ["-c", o]), `--git-dir=${repo}`, ...args], {
    env: { ...(await gitEnv(repo, process.env)), ...extraEnv },
    extendEnv: false,
    stdin: "ignore",
    timeout: timeoutMs,
    killSignal: "SIGKILL",
    maxBuffer: MiB,
    reject: false,
  });
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr), timedOut: r.timedOut === true };
}

// Lazarus's own bare repository for a cell's pushes (made again when a crash left it half made).
async function ownRepo(repo: string): Promise<void> {
  if ((await lstat(path.join(repo, "HEAD")).catch(() => undefined))?.isFile()) return;
  await rm(repo, { recursive: true, force: true });
  await mkdir(path.dirname(repo), { recursive: true, mode: 0o700 });
  const r = await execa("git", ["init", "--bare", "--quiet", "--template=", repo], {
    env: await gitEnv(repo, process.env),
    extendEnv: false,
    stdin: "ignore",
    reject: false,
  });
  if (r.exitCode !== 0) throw new PushError(`git init of ${repo}: ${String(r.stderr).trim()}`, "transient");
}

// Copy the branch from project/ into Lazarus's repository; its tip must be the commit measured.
async function fetchBranch(repo: string, project: string, branch: string, sha: string): Promise<void> {
  const ref = `refs/heads/${branch}`;
  const r = await ownGit(
    repo,
    [
      "-c",
      "protocol.file.allow=always",
      "fetch",
      "--quiet",
      "--no-tags",
      "--no-write-fetch-head",
      "--no-auto-gc",
      "--no-recurse-submodules",
      `file://${project}`,
      `+${ref}:${ref}`,
    ],
    {},
    PUSH_BOUNDS.fetchTimeoutMs,
  );
  if (r.timedOut) throw new PushError(`reading branch ${branch} from project/ timed out`, "transient");
  if (r.code !== 0) throw new PushError(`reading branch ${branch} from project/: ${lastLine(r.stderr)}`, "transient");
  const got = await ownGit(repo, ["rev-parse", "--verify", "--quiet", `${ref}^{commit}`], {}, 10_000);
  if (got.stdout.trim() !== sha)
    throw new PushError(`branch ${branch} moved while it was read (tried again at the next pass)`, "transient");
}

const lastLine = (text: string): string =>
  text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-2)
    .join("; ")
    .slice(0, 300);

// What a failed push means, from git's words (git gives no structured status for HTTP).
export function classify(stderr: string): PushFailure {
  const code = /(?:returned error|HTTP):? (\d{3})/.exec(stderr)?.[1];
  if (code) return code === "429" || code.startsWith("5") ? "transient" : "permanent";
  if (/Authentication failed|could not read (Username|Password)|terminal prompts disabled|not found/i.test(stderr))
    return "permanent";
  return "transient";
}

export interface Pushed {
  result: "new branch" | "updated" | "up to date";
}

// The push's porcelain report for the one ref: ok (with how), or rejected with git's reason.
function porcelain(stdout: string, branch: string): { ok: Pushed } | { rejected: string } | undefined {
  const line = stdout.split("\n").find((l) => l.includes(`\trefs/heads/${branch}:refs/heads/${branch}\t`));
  if (!line) return undefined;
  const flag = line[0];
  const summary = line.split("\t")[2] ?? "";
  if (flag === "!") return { rejected: summary.replace(/^\[(remote )?rejected\]\s*/, "").trim() || summary };
  if (flag === "=") return { ok: { result: "up to date" } };
  if (flag === "*") return { ok: { result: "new branch" } };
  return { ok: { result: "updated" } };
}

// The header that carries the token: HTTP basic with the token as the password (what Gitea,
// Forgejo and GitHub all take for git over HTTPS; x-access-token is GitHub's user for app tokens).
export function authEnv(token: string, count = 0): Record<string, string> {
  const basic = Buffer.from(`x-access-token:${token}`).toString("base64");
  return {
    GIT_CONFIG_COUNT: String(count + 1),
    [`GIT_CONFIG_KEY_${count}`]: "http.extraHeader",
    [`GIT_CONFIG_VALUE_${count}`]: `Authorization: Basic ${basic}`,
  };
}

export interface PushRequest {
  repo: string; // Lazarus's own bare repository for this cell
  project: string; // the cell's project/
  branch: string;
  sha: string; // the commit measured in project/ (branchTip)
  url: string; // from the operator's forge table
  token: string;
}

// Fetch the branch into Lazarus's repository and push it, never forced. Throws a PushError.
export async function pushBranch(p: PushRequest): Promise<Pushed> {
  const scrub = (t: string): string => t.split(p.token).join("***");
  await ownRepo(p.repo);
  await fetchBranch(p.repo, p.project, p.branch, p.sha);
  const ref = `refs/heads/${p.branch}`;
  const proto = new URL(p.url).protocol === "https:" ? "https" : "http";
  let r: Ran;
  try {
    r = await ownGit(
      p.repo,
      ["-c", `protocol.${proto}.allow=always`, "push", "--porcelain", "--no-verify", p.url, `${ref}:${ref}`],
      authEnv(p.token),
      PUSH_BOUNDS.pushTimeoutMs,
    );
  } catch (err) {
    throw new PushError(scrub(`push to ${p.url}: ${errorMessage(err)}`), "transient");
  }
  if (r.timedOut) throw new PushError(`push to ${p.url} timed out after ${PUSH_BOUNDS.pushTimeoutMs} ms`, "transient");
  const said = porcelain(r.stdout, p.branch);
  if (said && "rejected" in said)
    throw new PushError(scrub(`push of ${p.branch} to ${p.url} rejected ${said.rejected}; not forced`), "rejected");
  if (r.code === 0 && said) return said.ok;
  const why = scrub(lastLine(r.stderr) || `git exited with ${r.code}`);
  throw new PushError(`push of ${p.branch} to ${p.url}: ${why}`, classify(r.stderr));
}
