// A smart-HTTP git server for tests: the real `git http-backend` (CGI) behind a small node server
// the test starts on 127.0.0.1, serving the bare repositories under root (pushes allowed). Used
// over HTTPS by the egress tests (test/egress/helpers.ts) and over HTTP, with a token required,
// by the forge push tests (test/forge/push.test.ts).
import { spawn } from "node:child_process";
import http from "node:http";
import type net from "node:net";

export interface GitRequest {
  method: string;
  path: string;
  authorized: boolean;
  status: number;
}

export interface GitServerOptions {
  // Only requests whose basic-auth password is this token get through (else 401, asking for it).
  token?: string;
  // Answered instead of git, in order, one per request (e.g. 500 for a forge having a bad minute).
  script?: number[];
}

// The request handler: git http-backend for each request, its CGI headers turned into HTTP ones.
export function gitBackend(
  root: string,
  opts: GitServerOptions = {},
  seen: GitRequest[] = [],
): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const auth = /^Basic (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    const password = auth ? Buffer.from(auth, "base64").toString().split(":").slice(1).join(":") : undefined;
    const authorized = opts.token === undefined || password === opts.token;
    const row: GitRequest = { method: req.method ?? "GET", path: url.pathname, authorized, status: 0 };
    seen.push(row);
    const scripted = opts.script?.shift();
    if (scripted !== undefined || !authorized) {
      row.status = scripted ?? 401;
      if (!authorized) res.setHeader("www-authenticate", 'Basic realm="git"');
      res.writeHead(row.status).end();
      return void req.resume();
    }
    const cgi = spawn("git", ["http-backend"], {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: "1",
        REMOTE_USER: "tester", // lets receive-pack (push) through
        REQUEST_METHOD: req.method ?? "GET",
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.slice(1),
        CONTENT_TYPE: req.headers["content-type"] ?? "",
        ...(req.headers["content-encoding"] ? { HTTP_CONTENT_ENCODING: req.headers["content-encoding"] } : {}),
        GIT_CONFIG_NOSYSTEM: "1",
        HOME: root,
      },
    });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let headersDone = false;
    cgi.stdout.on("data", (d: Buffer) => {
      if (headersDone) return void res.write(d);
      head = Buffer.concat([head, d]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      headersDone = true;
      let status = 200;
      for (const line of head.subarray(0, end).toString().split("\r\n")) {
        const i = line.indexOf(":");
        const k = line.slice(0, i).trim();
        const v = line.slice(i + 1).trim();
        if (k.toLowerCase() === "status") status = Number(v.split(" ")[0]);
        else res.setHeader(k, v);
      }
      row.status = status;
      res.writeHead(status);
      res.write(head.subarray(end + 4));
    });
    cgi.stdout.on("end", () => res.end());
    cgi.on("error", () => res.destroy());
  };
}

// An HTTP git server on 127.0.0.1; `seen` lists every request it got.
export async function gitHttpServer(
  root: string,
  opts: GitServerOptions = {},
): Promise<{ server: http.Server; port: number; url: string; seen: GitRequest[] }> {
  const seen: GitRequest[] = [];
  const server = http.createServer(gitBackend(root, opts, seen));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  return { server, port, url: `http://127.0.0.1:${port}`, seen };
}
