// One client per forge kind, for the three operations publishing needs: list an issue's comments,
// create one, edit one. Failures say whether trying again can help (5xx, 429, a rate limit, the
// network) or not (401, 403, 404, other 4xx). The token goes only into the Authorization header;
// it is scrubbed from every message, so it never reaches output, logs, the ledger or events.
import { LazarusError } from "../util/errors.js";
import type { ForgeKind, IssueRef } from "./table.js";

export interface ForgeComment {
  id: number;
  body: string;
}

export class ForgeError extends LazarusError {
  constructor(
    message: string,
    readonly permanent: boolean,
    readonly status?: number,
    readonly retryAfterMs?: number,
  ) {
    super("FORGE_FAILED", message);
  }
}

export interface ForgeClient {
  list(issue: IssueRef): Promise<ForgeComment[]>;
  create(issue: IssueRef, body: string): Promise<ForgeComment>;
  edit(issue: IssueRef, id: number, body: string): Promise<ForgeComment>;
}

const TIMEOUT_MS = 15_000;
const MAX_PAGES = 50;
const PER_PAGE = 100;

// Retry-After: seconds, or an HTTP date; undefined when absent or unreadable.
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d{1,7}$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

interface Wire {
  base: string;
  headers: Record<string, string>;
  listPath(i: IssueRef, page: number): string | undefined; // undefined: no more pages
  pages: boolean;
  createPath(i: IssueRef): string;
  editPath(i: IssueRef, id: number): string;
}

const seg = encodeURIComponent;

function wire(kind: ForgeKind, url: string, token: string): Wire {
  const repo = (i: IssueRef) => `/repos/${seg(i.owner)}/${seg(i.repo)}`;
  switch (kind) {
    case "gitea":
      return {
        base: `${url}/api/v1`,
        headers: { authorization: `token ${token}`, accept: "application/json" },
        listPath: (i, page) => (page === 1 ? `${repo(i)}/issues/${i.issue}/comments` : undefined),
        pages: false,
        createPath: (i) => `${repo(i)}/issues/${i.issue}/comments`,
        editPath: (i, id) => `${repo(i)}/issues/comments/${id}`,
      };
    case "github":
      return {
        base: url,
        headers: {
          authorization: `Bearer ${token}`,
          accept: "application/vnd.github+json",
          "x-github-api-version": "2022-11-28",
        },
        listPath: (i, page) => `${repo(i)}/issues/${i.issue}/comments?per_page=${PER_PAGE}&page=${page}`,
        pages: true,
        createPath: (i) => `${repo(i)}/issues/${i.issue}/comments`,
        editPath: (i, id) => `${repo(i)}/issues/comments/${id}`,
      };
  }
}

// A client for one forge row; fetchImpl is the global fetch unless a caller passes its own.
export function forgeClient(kind: ForgeKind, url: string, token: string, fetchImpl: typeof fetch = fetch): ForgeClient {
  const w = wire(kind, url, token);
  const scrub = (text: string): string => (token ? text.split(token).join("***") : text);
  const call = async (method: string, p: string, body?: unknown): Promise<unknown> => {
    const what = `${method} ${w.base}${p.replace(/\?.*$/, "")}`;
    let res: Response;
    try {
      res = await fetchImpl(`${w.base}${p}`, {
        method,
        headers: {
          ...w.headers,
          "user-agent": "lazarus",
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(TIMEOUT_MS),
        redirect: "error",
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (err as Error).message;
      throw new ForgeError(scrub(`${what}: ${why}`), false);
    }
    const text = await res.text().catch(() => "");
    if (res.ok) {
      try {
        return text ? (JSON.parse(text) as unknown) : undefined;
      } catch {
        throw new ForgeError(scrub(`${what}: answered ${res.status} with a body that is not JSON`), false, res.status);
      }
    }
    const wait = retryAfterMs(res.headers.get("retry-after"));
    const limited = res.status === 403 && (wait !== undefined || res.headers.get("x-ratelimit-remaining") === "0");
    const transient = res.status === 429 || res.status >= 500 || limited;
    const detail = text.replace(/\s+/g, " ").slice(0, 200);
    throw new ForgeError(scrub(`${what}: ${res.status}${detail ? ` ${detail}` : ""}`), !transient, res.status, wait);
  };
  const comment = (v: unknown, what: string): ForgeComment => {
    const c = v as { id?: unknown; body?: unknown } | undefined;
    if (typeof c?.id !== "number") throw new ForgeError(`${what}: the answer carries no comment id`, false);
    return { id: c.id, body: typeof c.body === "string" ? c.body : "" };
  };
  return {
    async list(i) {
      const all: ForgeComment[] = [];
      for (let page = 1; page <= MAX_PAGES; page++) {
        const p = w.listPath(i, page);
        if (!p) break;
        const got = await call("GET", p);
        if (!Array.isArray(got))
          throw new ForgeError(`listing comments of ${i.owner}/${i.repo}#${i.issue}: not a list`, false);
        for (const c of got) all.push(comment(c, "listing comments"));
        if (!w.pages || got.length < PER_PAGE) break;
      }
      return all;
    },
    async create(i, body) {
      return comment(await call("POST", w.createPath(i), { body }), "creating a comment");
    },
    async edit(i, id, body) {
      return comment(await call("PATCH", w.editPath(i, id), { body }), "editing a comment");
    },
  };
}
