// A stand-in forge for tests: no Gitea or GitHub can run here, so the test starts this small HTTP
// server on 127.0.0.1. It keeps issue comments in memory, answers as the forge would, and checks
// every request it receives (method, path, query, body, auth) against the forge's own published API
// description, vendored in test/fixtures/forge/ (only the operations Lazarus uses): a request that
// does not fit is answered 400 and listed in `violations`, which the tests assert is empty.
import http from "node:http";
import { readFileSync } from "node:fs";
import path from "node:path";
import { Ajv } from "ajv";
import { ROOT } from "../helpers.js";

export type Kind = "gitea" | "github";

interface Param {
  name: string;
  in: string;
  required?: boolean;
  type?: string;
  schema?: { type?: string; $ref?: string };
  $ref?: string;
}

interface Operation {
  operationId: string;
  parameters?: Param[];
  requestBody?: { required?: boolean; content: Record<string, { schema: object }> };
}

export interface Seen {
  at: number;
  method: string;
  path: string;
  operationId?: string;
  status: number;
}

export interface Scripted {
  status: number;
  headers?: Record<string, string>;
}

const spec = (kind: Kind) =>
  JSON.parse(readFileSync(path.join(ROOT, "test", "fixtures", "forge", `${kind}-issue-comments.json`), "utf8")) as {
    basePath?: string;
    paths: Record<string, Record<string, Operation>>;
    definitions?: Record<string, object>;
    components?: { parameters: Record<string, Param> };
  };

export class StandIn {
  readonly comments = new Map<string, { id: number; body: string }[]>(); // "owner/repo#n" → comments
  readonly seen: Seen[] = [];
  readonly violations: string[] = [];
  private next = 100;
  private script: Scripted[] = [];
  private server: http.Server | undefined;
  private readonly doc;
  private readonly ajv = new Ajv({ strict: false, allErrors: true });
  url = "";

  constructor(
    readonly kind: Kind,
    readonly token: string,
  ) {
    this.doc = spec(kind);
    if (this.doc.definitions) this.ajv.addSchema({ definitions: this.doc.definitions }, "swagger");
  }

  // The next answers, in order, instead of the real ones (500s, 429s, 403s...).
  answer(...r: Scripted[]): void {
    this.script.push(...r);
  }

  // Answer every request so from now on (until cleared).
  always: Scripted | undefined;

  all(): { issue: string; id: number; body: string }[] {
    return [...this.comments].flatMap(([issue, list]) => list.map((c) => ({ issue, ...c })));
  }

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      let data = "";
      req.on("data", (d: Buffer) => (data += d.toString("utf8")));
      req.on("end", () => this.handle(req, res, data));
    });
    await new Promise<void>((r) => this.server?.listen(0, "127.0.0.1", r));
    const port = (this.server.address() as { port: number }).port;
    this.url = `http://127.0.0.1:${port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private param(p: Param): Param {
    if (!p.$ref) return p;
    const name = p.$ref.replace("#/components/parameters/", "");
    return this.doc.components?.parameters[name] as Param;
  }

  // The operation a request is, by the description's paths (with its base path), or a violation.
  private route(method: string, url: URL): { op: Operation; params: Record<string, string> } | string {
    const base = this.doc.basePath ?? "";
    if (!url.pathname.startsWith(base)) return `${method} ${url.pathname}: not under ${base}`;
    const rel = url.pathname.slice(base.length);
    for (const [template, ops] of Object.entries(this.doc.paths)) {
      const names: string[] = [];
      const re = new RegExp(
        `^${template.replace(/\{([^}]+)\}/g, (_, n: string) => {
          names.push(n);
          return "([^/]+)";
        })}$`,
      );
      const m = re.exec(rel);
      if (!m) continue;
      const op = ops[method.toLowerCase()];
      if (!op) return `${method} ${template}: the description has no such operation`;
      const params: Record<string, string> = {};
      names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1] as string)));
      return { op, params };
    }
    return `${method} ${rel}: no such path in the description`;
  }

  // Why a request does not fit its operation, or undefined.
  private check(op: Operation, params: Record<string, string>, url: URL, body: string, auth?: string): string[] {
    const out: string[] = [];
    const declared = (op.parameters ?? []).map((p) => this.param(p));
    for (const p of declared) {
      const type = p.type ?? p.schema?.type;
      const value = p.in === "path" ? params[p.name] : p.in === "query" ? url.searchParams.get(p.name) : undefined;
      if (p.in === "path" && value === undefined) out.push(`path parameter ${p.name} missing`);
      if (value != null && type === "integer" && !/^-?\d+$/.test(value))
        out.push(`${p.name}=${value} is not an integer`);
    }
    for (const q of url.searchParams.keys())
      if (!declared.some((p) => p.in === "query" && p.name === q)) out.push(`query parameter ${q} is not declared`);
    const bodySchema =
      declared.find((p) => p.in === "body")?.schema ?? op.requestBody?.content["application/json"]?.schema;
    if (bodySchema) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(body);
      } catch {
        out.push("request body is not JSON");
      }
      const schema = "$ref" in bodySchema ? { $ref: `swagger${String(bodySchema.$ref)}` } : bodySchema;
      const validate = this.ajv.compile(schema);
      if (parsed !== undefined && !validate(parsed)) out.push(`request body: ${this.ajv.errorsText(validate.errors)}`);
    } else if (body) out.push("a body where the operation takes none");
    const want = this.kind === "gitea" ? `token ${this.token}` : `Bearer ${this.token}`;
    if (auth !== want) out.push(`Authorization header is not "${this.kind === "gitea" ? "token" : "Bearer"} <token>"`);
    return out;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse, body: string): void {
    const method = req.method ?? "GET";
    const url = new URL(req.url ?? "/", "http://stand-in");
    const send = (status: number, value?: unknown, headers: Record<string, string> = {}) => {
      const at = Date.now();
      this.seen.push({ at, method, path: url.pathname + url.search, ...(op ? { operationId: op } : {}), status });
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(value === undefined ? "" : JSON.stringify(value));
    };
    let op: string | undefined;
    const r = this.route(method, url);
    if (typeof r === "string") {
      this.violations.push(r);
      return send(400, { message: r });
    }
    op = r.op.operationId;
    const problems = this.check(r.op, r.params, url, body, req.headers.authorization);
    if (problems.length) {
      this.violations.push(...problems.map((p) => `${op}: ${p}`));
      return send(400, { message: problems.join("; ") });
    }
    const scripted = this.script.shift() ?? this.always;
    if (scripted) return send(scripted.status, { message: "stand-in says no" }, scripted.headers);
    const issue = `${r.params.owner}/${r.params.repo}#${r.params.index ?? r.params.issue_number}`;
    const list = this.comments.get(issue) ?? [];
    switch (op) {
      case "issueGetComments":
      case "issues/list-comments": {
        if (this.kind === "gitea") return send(200, list);
        const per = Number(url.searchParams.get("per_page") ?? 30);
        const page = Number(url.searchParams.get("page") ?? 1);
        return send(200, list.slice((page - 1) * per, page * per));
      }
      case "issueCreateComment":
      case "issues/create-comment": {
        const c = { id: this.next++, body: (JSON.parse(body) as { body: string }).body };
        this.comments.set(issue, [...list, c]);
        return send(201, c);
      }
      default: {
        const id = Number(r.params.id ?? r.params.comment_id);
        for (const l of this.comments.values()) {
          const c = l.find((x) => x.id === id);
          if (c) {
            c.body = (JSON.parse(body) as { body: string }).body;
            return send(200, c);
          }
        }
        return send(404, { message: "no such comment" });
      }
    }
  }
}
