// The system git, through execa: a bare cache of the config repo under the state dir, and
// revisions exported as plain directories (one per commit, never modified after).
import { mkdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { execa } from "../util/exec.js";
import { sha256 } from "../config/digest.js";
import { LazarusError, errorMessage } from "../util/errors.js";

export interface RepoCache {
  url: string;
  dir: string; // the bare repository
  revisions: string; // exported trees: <revisions>/<sha>/
}

async function git(args: string[], cwd?: string): Promise<string> {
  try {
    const r = await execa("git", args, { ...(cwd ? { cwd } : {}), stdin: "ignore", env: { GIT_TERMINAL_PROMPT: "0" } });
    return r.stdout.trim();
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw new LazarusError("GIT_FAILED", `git ${args.join(" ")} failed: ${stderr || errorMessage(err)}`, {
      cause: err,
    });
  }
}

// Whether text names a remote repo (scheme://… or scp-like user@host:path, an "@" before the
// first ":" and no "/" before it) rather than a local path. Found with indexOf: the regex it
// replaces (/^[^/]+@[^:]+:/) tried every "@" against the rest, quadratic in a run of "@".
export function isGitUrl(url: string): boolean {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return true;
  const colon = url.indexOf(":");
  const at = url.indexOf("@");
  return at > 0 && colon > at + 1 && !url.slice(0, colon).includes("/");
}

// A local path is used as it is (made absolute); anything else is handed to git unchanged.
export function normalizeUrl(url: string): string {
  return isGitUrl(url) ? url : path.resolve(url);
}

export function repoCache(gitopsDir: string, url: string): RepoCache {
  const u = normalizeUrl(url);
  const key = sha256(u).slice(0, 12);
  return {
    url: u,
    dir: path.join(gitopsDir, "repos", `${key}.git`),
    revisions: path.join(gitopsDir, "revisions", key),
  };
}

// Fetch every branch, tag and remote-tracking ref (origin/main of a CI checkout) into the cache;
// returns the commit a ref names now. The upstream HEAD is fetched only when ref names it: a bare
// repo whose HEAD points at a branch nobody pushed (master, while the guide pushes main) has none.
export async function fetchRef(cache: RepoCache, ref: string): Promise<string> {
  try {
    await stat(cache.dir);
  } catch {
    await mkdir(path.dirname(cache.dir), { recursive: true });
    await git(["init", "--bare", "--quiet", cache.dir]);
  }
  const specs = [
    "+refs/heads/*:refs/heads/*",
    "+refs/tags/*:refs/tags/*",
    "+refs/remotes/*:refs/remotes/*",
    ...(namesHead(ref) ? ["+HEAD:refs/upstream/HEAD"] : []),
  ];
  await git(["--git-dir", cache.dir, "fetch", "--quiet", "--prune", "--force", cache.url, ...specs]);
  return resolveRef(cache, ref);
}

// HEAD, HEAD~2, HEAD^ and the like.
function namesHead(ref: string): boolean {
  return /^HEAD(?=$|[~^@])/.test(ref);
}

// HEAD means the upstream repository's HEAD (HEAD~2 and the like too), not the cache's.
export async function resolveRef(cache: RepoCache, ref: string): Promise<string> {
  const local = ref.replace(/^HEAD(?=$|[~^@])/, "refs/upstream/HEAD");
  return git(["--git-dir", cache.dir, "rev-parse", "--verify", "--quiet", `${local}^{commit}`]).catch(() => {
    throw new LazarusError("NO_SUCH_REF", `${ref} is not a branch, tag or commit of ${cache.url}`);
  });
}

export async function commitSubject(cache: RepoCache, sha: string): Promise<string> {
  return git(["--git-dir", cache.dir, "log", "-1", "--format=%s", sha]);
}

// The commit's tree as a directory (exported once, atomically, then reused).
export async function exportRevision(cache: RepoCache, sha: string): Promise<string> {
  const dir = path.join(cache.revisions, sha);
  try {
    await stat(dir);
    return dir;
  } catch {
    // not yet exported
  }
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const archive = await execa("git", ["--git-dir", cache.dir, "archive", "--format=tar", sha], {
    encoding: "buffer",
    stdin: "ignore",
  });
  await execa("tar", ["-x", "-C", tmp], { input: archive.stdout as Uint8Array });
  await rename(tmp, dir);
  return dir;
}
