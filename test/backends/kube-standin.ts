// A STAND-IN for a Kubernetes API server, on 127.0.0.1, for the kubernetes backend's tests.
// No real API server (nor kind, k3s, a kubelet or etcd) can run on this machine, and no cluster
// is reachable from it, so this small HTTP server answers the few calls Lazarus makes the way the
// API server documents them: discovery (GET /api/v1, /apis/<group>/<version>), server-side apply
// (PATCH with Content-Type application/apply-patch+yaml, fieldManager, force), list by label
// selector, and DELETE (404 with a Status when gone). It keeps the objects in memory, records every
// request, and lets a test set a pod's phase and container status as a kubelet would. It does not
// merge fields by manager, run admission, or schedule anything: what it proves is the requests
// Lazarus sends and how Lazarus reads the answers, not a cluster's behaviour.
import { execFileSync } from "node:child_process";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer } from "node:https";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parse } from "yaml";

export interface SeenRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType?: string;
  authorization?: string;
  body?: Record<string, any>;
}

type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: any;
};

const RESOURCES: Record<string, { group: string; resources: { name: string; kind: string }[] }> = {
  "/api/v1": {
    group: "v1",
    resources: [
      { name: "pods", kind: "Pod" },
      { name: "secrets", kind: "Secret" },
      { name: "persistentvolumeclaims", kind: "PersistentVolumeClaim" },
    ],
  },
  "/apis/networking.k8s.io/v1": {
    group: "networking.k8s.io/v1",
    resources: [{ name: "networkpolicies", kind: "NetworkPolicy" }],
  },
  "/apis/agents.x-k8s.io/v1beta1": {
    group: "agents.x-k8s.io/v1beta1",
    resources: [{ name: "sandboxes", kind: "Sandbox" }],
  },
};

export class StandIn {
  readonly requests: SeenRequest[] = [];
  readonly objects = new Map<string, Obj>(); // "<plural>/<namespace>/<name>"
  private server: Server | undefined;
  private uid = 0;
  port = 0;
  // Refuse every apply of this resource (plural) with 422 and this message, as admission would.
  refuse: { plural: string; message: (body: Obj) => string } | undefined;

  private cert = "";
  private readonly fromSandbox = new Set<string>(); // pods made by controllerPass

  // TLS as a real API server serves it (the client refuses plain http unless told to skip TLS
  // verification): a self-signed certificate for 127.0.0.1, made by openssl for this run.
  async start(): Promise<void> {
    const dir = mkdtempSync(path.join(tmpdir(), "lazarus-standin-"));
    try {
      execFileSync(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:P-256",
          "-nodes",
          "-days",
          "1",
          "-subj",
          "/CN=127.0.0.1",
          "-addext",
          "subjectAltName=IP:127.0.0.1",
          "-keyout",
          path.join(dir, "key.pem"),
          "-out",
          path.join(dir, "cert.pem"),
        ],
        { stdio: "ignore" },
      );
      this.cert = readFileSync(path.join(dir, "cert.pem"), "utf8");
      this.server = createServer(
        { key: readFileSync(path.join(dir, "key.pem")), cert: this.cert },
        (req, res) => void this.handle(req, res),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve));
    const addr = this.server.address();
    this.port = typeof addr === "object" && addr ? addr.port : 0;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  // A kubeconfig naming this server, with a bearer token (so the test sees it sent).
  writeKubeconfig(file: string, context = "stand-in"): void {
    writeFileSync(
      file,
      [
        "apiVersion: v1",
        "kind: Config",
        `clusters: [{name: stand-in, cluster: {server: "https://127.0.0.1:${this.port}", certificate-authority-data: ${Buffer.from(this.cert).toString("base64")}}}]`,
        "users: [{name: lazarus, user: {token: stand-in-token}}]",
        `contexts: [{name: ${context}, context: {cluster: stand-in, user: lazarus}}, {name: other, context: {cluster: stand-in, user: lazarus}}]`,
        "current-context: other",
        "",
      ].join("\n"),
    );
  }

  pods(): Obj[] {
    return [...this.objects.entries()].filter(([k]) => k.startsWith("pods/")).map(([, o]) => o);
  }

  // What the agent-sandbox controller would do (as its documentation says; assumed, not verified):
  // a pod named after each Sandbox that has none, with the template's labels and spec, running.
  controllerPass(): void {
    for (const [k, sb] of this.objects) {
      if (!k.startsWith("sandboxes/")) continue;
      const ns = sb.metadata.namespace as string;
      const key = `pods/${ns}/${sb.metadata.name}`;
      if (this.objects.has(key)) continue;
      this.fromSandbox.add(key);
      this.objects.set(key, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          name: sb.metadata.name,
          namespace: ns,
          labels: { ...sb.spec.podTemplate.metadata.labels },
          creationTimestamp: "2026-11-26T02:58:00Z",
        },
        spec: sb.spec.podTemplate.spec,
        status: { phase: "Running" },
      });
    }
    // A deleted Sandbox takes its pod with it.
    for (const k of [...this.fromSandbox]) {
      if (this.objects.has(`sandboxes/${k.slice("pods/".length)}`)) continue;
      this.objects.delete(k);
      this.fromSandbox.delete(k);
    }
  }

  // What a kubelet would report: the pod's phase and its member container's end.
  setPod(name: string, phase: string, terminated?: { exitCode: number; reason?: string }): void {
    const o = this.pods().find((p) => p.metadata.name === name);
    if (!o) throw new Error(`no pod ${name}`);
    o.status = {
      phase,
      ...(terminated
        ? {
            containerStatuses: [
              {
                name: "member",
                ready: false,
                restartCount: 0,
                image: "x",
                imageID: "",
                state: {
                  terminated: { ...terminated, finishedAt: "2026-11-26T03:00:00Z", startedAt: "2026-11-26T02:59:00Z" },
                },
              },
            ],
          }
        : {}),
    };
  }

  private send(res: ServerResponse, code: number, body: unknown): void {
    res.writeHead(code, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  }

  private status(res: ServerResponse, code: number, reason: string, message: string): void {
    this.send(res, code, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const seen: SeenRequest = {
      method: req.method ?? "",
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      ...(req.headers["content-type"] ? { contentType: req.headers["content-type"] } : {}),
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
      ...(text ? { body: parse(text) as Record<string, any> } : {}),
    };
    this.requests.push(seen);
    const disc = RESOURCES[url.pathname];
    if (req.method === "GET" && disc) {
      return this.send(res, 200, {
        kind: "APIResourceList",
        apiVersion: "v1",
        groupVersion: disc.group,
        resources: disc.resources.map((r) => ({
          name: r.name,
          singularName: r.kind.toLowerCase(),
          namespaced: true,
          kind: r.kind,
          verbs: ["create", "delete", "get", "list", "patch"],
        })),
      });
    }
    const m = /^\/(?:api\/v1|apis\/[^/]+\/[^/]+)\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?$/.exec(url.pathname);
    if (!m) return this.status(res, 404, "NotFound", `the stand-in does not serve ${req.method} ${url.pathname}`);
    const [, ns, plural, name] = m as unknown as [string, string, string, string | undefined];
    const key = `${plural}/${ns}/${name}`;
    if (req.method === "PATCH" && name) {
      if (seen.contentType !== "application/apply-patch+yaml")
        return this.status(
          res,
          415,
          "UnsupportedMediaType",
          `the stand-in answers server-side apply only, not ${seen.contentType}`,
        );
      if (!seen.query.fieldManager)
        return this.status(res, 422, "Invalid", "fieldManager is required for apply requests");
      const body = seen.body as Obj;
      if (this.refuse?.plural === plural) return this.status(res, 422, "Invalid", this.refuse.message(body));
      const old = this.objects.get(key);
      const obj: Obj = {
        ...body,
        metadata: {
          ...body.metadata,
          namespace: ns,
          uid: (old?.metadata.uid as string | undefined) ?? `uid-${++this.uid}`,
          creationTimestamp: (old?.metadata.creationTimestamp as string | undefined) ?? "2026-11-26T02:58:00Z",
        },
      };
      if (plural === "pods") obj.status = old?.status ?? { phase: "Pending" };
      this.objects.set(key, obj);
      return this.send(res, old ? 200 : 201, obj);
    }
    if (req.method === "GET" && !name) {
      const want = (seen.query.labelSelector ?? "")
        .split(",")
        .filter(Boolean)
        .map((s) => s.split("=") as [string, string]);
      const items = [...this.objects.entries()]
        .filter(([k]) => k.startsWith(`${plural}/${ns}/`))
        .map(([, o]) => o)
        .filter((o) => want.every(([k, v]) => o.metadata.labels?.[k] === v));
      return this.send(res, 200, { kind: "List", apiVersion: "v1", metadata: { resourceVersion: "1" }, items });
    }
    if (req.method === "DELETE" && name) {
      const o = this.objects.get(key);
      if (!o) return this.status(res, 404, "NotFound", `${plural} "${name}" not found`);
      this.objects.delete(key);
      return this.send(res, 200, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success" });
    }
    return this.status(res, 405, "MethodNotAllowed", `the stand-in does not serve ${req.method} ${url.pathname}`);
  }
}
