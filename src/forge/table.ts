// The operator's forge table (LAZARUS_FORGES: a YAML file outside cells.d, trusted input): which
// forge a project's issue lives on, how to talk to it, and the token to do so with (a file under
// the secrets root). A cell file names only its project ("Org/repo#7"); it can never choose the URL
// or the token. Each problem is reported at the file's line, with what to do.
import { readFileSync, statSync } from "node:fs";
import { LineCounter, isMap, isSeq, parseDocument, type Node } from "yaml";
import { LazarusError, errorMessage } from "../util/errors.js";

export const FORGE_KINDS = ["gitea", "github"] as const;
export type ForgeKind = (typeof FORGE_KINDS)[number];

export interface Forge {
  match: string; // "Org/" (every repo of Org), "Org/repo" (that repo), or a pattern with * (any run)
  kind: ForgeKind; // gitea also serves Forgejo (same API)
  url: string; // gitea: the site (API under /api/v1); github: the API root (https://api.github.com)
  tokenFile?: string; // relative to the secrets root; without one the row only feeds egress
  gitUrl?: string; // where its repositories are pushed: <gitUrl>/<Org>/<repo>.git (default: from url)
  pushBranches?: string[]; // the branch names a cell may push (patterns with *); default: any
  line: number; // where the row starts in the file
}

export const FORGES_ENV = "LAZARUS_FORGES";

const KEYS = ["match", "kind", "url", "tokenFile", "gitUrl", "pushBranches"];

// An http(s) URL with a host and no credentials or query, or undefined.
function siteUrl(v: unknown): URL | undefined {
  let u: URL | undefined;
  try {
    u = typeof v === "string" ? new URL(v) : undefined;
  } catch {
    u = undefined;
  }
  if (!u || (u.protocol !== "https:" && u.protocol !== "http:") || !u.hostname || u.username || u.password || u.search)
    return undefined;
  return u;
}

// Why the row's push fields are wrong, or undefined.
function pushProblem(row: Record<string, unknown>): string | undefined {
  if (row.gitUrl !== undefined && !siteUrl(row.gitUrl))
    return "gitUrl must be an http(s) URL with a host and no credentials or query, e.g. https://gitea.example.org";
  const b = row.pushBranches;
  if (b !== undefined && (!Array.isArray(b) || b.some((x) => typeof x !== "string" || !/^[A-Za-z0-9._/*-]+$/.test(x))))
    return 'pushBranches must be a list of branch names or patterns with *, e.g. ["lazarus/*"]';
  return undefined;
}

// Why one row is wrong (field, what to do), or undefined when it is fine.
function rowProblem(row: Record<string, unknown>): string | undefined {
  for (const k of Object.keys(row)) if (!KEYS.includes(k)) return `unknown field ${k} (a row has ${KEYS.join(", ")})`;
  const { match, kind, url, tokenFile } = row;
  const push = pushProblem(row);
  if (push) return push;
  if (typeof match !== "string" || !/^[A-Za-z0-9*][A-Za-z0-9._*-]*(\/[A-Za-z0-9._*-]*)?$/.test(match))
    return 'match must be an "Org/" or "Org/repo" prefix (or a pattern with *), e.g. match: "Org/"';
  if (typeof kind !== "string" || !(FORGE_KINDS as readonly string[]).includes(kind))
    return `kind must be one of ${FORGE_KINDS.join(", ")} (Forgejo is kind: gitea)`;
  if (!siteUrl(url))
    return "url must be an http(s) URL with a host and no credentials or query, e.g. https://gitea.example.org";
  const badToken =
    tokenFile !== undefined &&
    (typeof tokenFile !== "string" ||
      tokenFile === "" ||
      tokenFile.startsWith("/") ||
      tokenFile.split(/[\\/]/).includes(".."));
  if (badToken) return "tokenFile must be a path relative to the secrets root, without .., e.g. gitea/token";
  return undefined;
}

// Parse the table's text; file names it in messages.
export function parseForges(text: string, file: string): Forge[] {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const at = (node: Node | null | undefined): number => (node?.range ? lines.linePos(node.range[0]).line : 1);
  const bad = (line: number, what: string): never => {
    throw new LazarusError(
      "BAD_SETTING",
      `${FORGES_ENV} ${file}:${line}: ${what}; fix the operator's forge table (docs/forges.md)`,
    );
  };
  const first = doc.errors[0];
  if (first) bad(first.linePos?.[0]?.line ?? 1, `not YAML (${first.message.split("\n")[0]})`);
  const top = doc.contents;
  const forges = isMap(top) ? top.get("forges", true) : undefined;
  if (!isSeq(forges)) return bad(at(top as Node | null), 'needs a list "forges:" of {match, kind, url, tokenFile}');
  return forges.items.map((item, i) => {
    const line = at(item as Node);
    if (!isMap(item)) return bad(line, `forges[${i}] is not a mapping`);
    const row = item.toJSON() as Record<string, unknown>;
    const why = rowProblem(row);
    if (why) bad(line, `forges[${i}]: ${why}`);
    return {
      match: row.match as string,
      kind: row.kind as ForgeKind,
      url: (row.url as string).replace(/\/+$/, ""),
      ...(typeof row.tokenFile === "string" ? { tokenFile: row.tokenFile } : {}),
      ...(typeof row.gitUrl === "string" ? { gitUrl: row.gitUrl.replace(/\/+$/, "") } : {}),
      ...(Array.isArray(row.pushBranches) ? { pushBranches: row.pushBranches as string[] } : {}),
      line,
    };
  });
}

// The table LAZARUS_FORGES names ([] when unset), re-read when the file changes.
const cache = new Map<string, { mtimeMs: number; size: number; forges: Forge[] }>();
export function forgeTable(env: NodeJS.ProcessEnv = process.env): Forge[] {
  const file = env[FORGES_ENV];
  if (!file) return [];
  let st: { mtimeMs: number; size: number };
  try {
    st = statSync(file);
  } catch (err) {
    throw new LazarusError(
      "BAD_SETTING",
      `${FORGES_ENV} ${file}: ${errorMessage(err)}; set it to the forge table's path`,
    );
  }
  const hit = cache.get(file);
  if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.forges;
  const forges = parseForges(readFileSync(file, "utf8"), file);
  cache.set(file, { mtimeMs: st.mtimeMs, size: st.size, forges });
  return forges;
}

// The repository part of a project ("Org/repo#7" → "Org/repo").
export const repoOf = (project: string): string => project.replace(/#.*$/, "");

// Whether text fits a pattern where "*" stands for any run of characters.
function globMatches(pattern: string, text: string): boolean {
  const re = new RegExp(
    `^${pattern
      .split("*")
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*")}$`,
  );
  return re.test(text);
}

// Whether a project fits a row's match: "Org/" every repo of Org, "Org/repo" that repo only, and
// "*" anywhere stands for any run of characters.
export function projectMatches(match: string, project: string): boolean {
  const repo = repoOf(project);
  if (!match.includes("*")) return match.endsWith("/") ? repo.startsWith(match) : repo === match;
  return globMatches(match, repo);
}

// The first row matching the project (rows are tried in file order), or undefined.
export function forgeFor(forges: Forge[], project: string): Forge | undefined {
  return forges.find((f) => projectMatches(f.match, project));
}

export interface IssueRef {
  owner: string;
  repo: string;
  issue: number;
}

// "Org/repo#7" → its parts; undefined when the project names no issue.
export function issueOf(project: string): IssueRef | undefined {
  const m = /^([A-Za-z0-9._-]+)\/([A-Za-z0-9._-]+)#([1-9]\d{0,9})$/.exec(project.trim());
  return m ? { owner: m[1] as string, repo: m[2] as string, issue: Number(m[3]) } : undefined;
}

export type Publication =
  { publishes: true; forge: Forge; issue: IssueRef; where: string } | { publishes: false; why: string };

// Where a cell's comments go, in words for plan and publish.
export function publicationOf(forges: Forge[], project: string): Publication {
  const forge = forgeFor(forges, project);
  if (!forge) return { publishes: false, why: "local only: no forge matches" };
  const issue = issueOf(project);
  if (!issue) return { publishes: false, why: `local only: project ${project} names no issue (Org/repo#N)` };
  if (!forge.tokenFile)
    return {
      publishes: false,
      why: `local only: the forge ${forge.url} (LAZARUS_FORGES line ${forge.line}) has no tokenFile`,
    };
  return {
    publishes: true,
    forge,
    issue,
    where: `${forge.kind} ${forge.url} ${issue.owner}/${issue.repo}#${issue.issue}`,
  };
}

// Where a row's repositories are pushed: gitUrl, else Gitea's site, else GitHub's web host (the API
// root api.github.com is github.com; GitHub Enterprise's https://HOST/api/v3 is https://HOST).
export function gitBase(forge: Pick<Forge, "kind" | "url" | "gitUrl">): string {
  if (forge.gitUrl) return forge.gitUrl;
  if (forge.kind === "gitea") return forge.url;
  const u = new URL(forge.url);
  if (u.hostname === "api.github.com") return `${u.protocol}//github.com`;
  return `${u.protocol}//${u.host}${u.pathname.replace(/\/api\/v3\/?$/, "")}`.replace(/\/+$/, "");
}

export type PushTarget = { pushes: true; forge: Forge; url: string; branch: string } | { pushes: false; why: string };

// Where a cell's branch is pushed (the URL from the operator's row, never from the cell), or why not.
export function pushTargetOf(forges: Forge[], project: string, branch: string): PushTarget {
  const forge = forgeFor(forges, project);
  if (!forge) return { pushes: false, why: "not pushed: no forge matches" };
  if (!forge.tokenFile)
    return {
      pushes: false,
      why: `not pushed: the forge ${forge.url} (LAZARUS_FORGES line ${forge.line}) has no tokenFile`,
    };
  const m = /^([A-Za-z0-9._-]+)\/([A-Za-z0-9._-]+)$/.exec(repoOf(project).trim());
  if (!m) return { pushes: false, why: `not pushed: project ${project} names no repository (Org/repo)` };
  if (forge.pushBranches && !forge.pushBranches.some((p) => globMatches(p, branch)))
    return {
      pushes: false,
      why: `not pushed: branch ${branch} is not in pushBranches of the forge (LAZARUS_FORGES line ${forge.line})`,
    };
  const repo = (m[2] as string).replace(/\.git$/, "");
  return { pushes: true, forge, url: `${gitBase(forge)}/${m[1]}/${repo}.git`, branch };
}
