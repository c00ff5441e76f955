// backend: kubernetes, offline: spec.kubernetes is validated at its line, and every object the
// cell renders to is validated against the official Kubernetes schemas (the kubernetes-models
// package, generated from the Kubernetes OpenAPI spec) — with bad objects shown to fail the same
// validators, so a pass means something. No cluster is needed or reached.
import { readFileSync } from "node:fs";
import path from "node:path";
import { PersistentVolumeClaim, Pod, PodSpec, Secret } from "kubernetes-models/v1";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { parseAllDocuments } from "yaml";
import { afterAll, describe, expect, it } from "vitest";
import { loadFileText } from "../../src/config/load.js";
import type { DesiredCell } from "../../src/config/types.js";
import { renderCell, type K8sObject } from "../../src/backends/kubernetes/render.js";
import { desiredRenderCell } from "../../src/backends/kubernetes/desired.js";
import { ROOT, cleanup, configDir, lazarus } from "../helpers.js";
import { Ajv } from "ajv";

const CELL = `apiVersion: lazarus/v1
kind: Cell
metadata: {name: alpha}
spec:
  project: Org/repo#1
  owner: human:alex
  backend: kubernetes
  ttl: 2h
  resources: {memory: 512Mi, cpu: 1.5}
  credentials:
    API_KEY: {env: LAZARUS_SECRET_API_KEY}
  policy: {allowGuests: true}
  kubernetes:
    namespace: agents
    image: registry.example/agent:1
    storageClass: fast
    storage: 5Gi
    egress: [{cidr: 10.0.0.0/8, ports: [443]}]
  members:
    - {identity: agent:Worker_1, role: executor, command: [agent, run], env: {MODE: fast}, resources: {memory: 1Gi}}
    - {identity: human:watch, role: observer, command: [tail, -f, /cell/shared/log]}
    - {identity: human:g, role: guest, command: [ls]}
    - {identity: human:alex, role: director}
`;

function load(text: string): { cells: DesiredCell[]; errors: { field?: string; message: string; line?: number }[] } {
  const r = loadFileText("cells.d/a.yaml", text);
  return { cells: r.cells, errors: r.diagnostics.filter((d) => d.severity === "error") };
}

function cellOf(text: string): DesiredCell {
  const { cells, errors } = load(text);
  expect(errors).toEqual([]);
  return cells[0] as DesiredCell;
}

// The Sandbox CRD of kubernetes-sigs/agent-sandbox, its served storage version (v1beta1), as the
// project publishes it (test/fixtures/agent-sandbox/, with the commit it came from). The API
// server prunes or, with strict field validation (kubectl's default), refuses fields its schema
// does not name: every object schema here is closed accordingly, so a field v1beta1 dropped
// (v1alpha1's spec.replicas) fails.
const SANDBOX_CRD = JSON.parse(
  readFileSync(path.join(ROOT, "test", "fixtures", "agent-sandbox", "sandbox-v1beta1.json"), "utf8"),
) as { group: string; version: string; schema: Record<string, unknown> };
function closed(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closed);
  if (!schema || typeof schema !== "object") return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema))
    out[k] =
      k === "properties" ? Object.fromEntries(Object.entries(v as object).map(([p, x]) => [p, closed(x)])) : closed(v);
  if (out.properties && !out["x-kubernetes-preserve-unknown-fields"] && out.additionalProperties === undefined)
    out.additionalProperties = false;
  return out;
}
const sandboxSchema = closed(SANDBOX_CRD.schema) as { properties: Record<string, unknown> };
sandboxSchema.properties.metadata = { type: "object" }; // checked below, as for every kind
const validateSandbox = new Ajv({ strict: false, validateFormats: false, allErrors: true }).compile(sandboxSchema);

// The official schema of each kind (a Sandbox is validated against its CRD's schema, and its pod
// template's PodSpec against the core one).
function validate(o: K8sObject): void {
  switch (o.kind) {
    case "Pod":
      new Pod(o as never).validate();
      break;
    case "Secret":
      new Secret(o as never).validate();
      break;
    case "PersistentVolumeClaim":
      new PersistentVolumeClaim(o as never).validate();
      break;
    case "NetworkPolicy":
      new NetworkPolicy(o as never).validate();
      break;
    case "Sandbox": {
      expect(o.apiVersion).toBe(`${SANDBOX_CRD.group}/${SANDBOX_CRD.version}`);
      const name = o.metadata.name;
      if (!validateSandbox(o as unknown)) throw new Error(`Sandbox ${name}: ${JSON.stringify(validateSandbox.errors)}`);
      new PodSpec((o.spec as { podTemplate: { spec: unknown } }).podTemplate.spec as never).validate();
      break;
    }
    default:
      throw new Error(`unexpected kind ${o.kind}`);
  }
  // What the OpenAPI schemas leave to the API server: names and labels.
  expect(o.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
  for (const [k, v] of Object.entries(o.metadata.labels ?? {})) {
    expect(k).toMatch(/^([a-z0-9.-]{1,253}\/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/);
    expect(v).toMatch(/^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/);
  }
}

const podSpecOf = (o: K8sObject): Record<string, any> =>
  o.kind === "Sandbox" ? (o.spec as any).podTemplate.spec : (o.spec as any);

describe("kubernetes render: official schemas", () => {
  it("every object of a cell validates, in a stable order", () => {
    const objs = renderCell(desiredRenderCell(cellOf(CELL)));
    expect(objs.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      "Secret/alpha-credentials",
      "PersistentVolumeClaim/alpha-tree",
      "NetworkPolicy/alpha-network",
      "Pod/alpha-worker-1-87e509",
      "Pod/alpha-watch",
      "Pod/alpha-g",
    ]);
    for (const o of objs) validate(o);
    // Deterministic: the same config renders the same bytes.
    expect(JSON.stringify(renderCell(desiredRenderCell(cellOf(CELL))))).toBe(JSON.stringify(objs));
  });

  it("the agent-sandbox workload validates too, with the same pod", () => {
    const c = cellOf(CELL.replace("storage: 5Gi", "storage: 5Gi\n    workload: sandbox"));
    const objs = renderCell({ ...desiredRenderCell(c), uid: "u1", expiresAt: "2026-11-26T06:00:00.000Z" });
    const sandboxes = objs.filter((o) => o.kind === "Sandbox");
    expect(sandboxes).toHaveLength(3);
    for (const o of objs) validate(o);
    expect((sandboxes[0]?.spec as any).shutdownTime).toBe("2026-11-26T06:00:00.000Z");
    expect((sandboxes[0]?.spec as any).podTemplate.metadata.labels["lazarus.dev/cell"]).toBe("alpha");
    expect((sandboxes[0]?.spec as any).operatingMode).toBe("Running");
    // The CRD's schema can fail: v1alpha1's replicas, a bad operating mode or policy are refused.
    const broken: ((s: any) => void)[] = [
      (s) => (s.spec.replicas = 1),
      (s) => (s.spec.operatingMode = "Paused"),
      (s) => (s.spec.shutdownPolicy = "Keep"),
      (s) => delete s.spec.podTemplate,
    ];
    for (const b of broken) {
      const s = structuredClone(sandboxes[0]) as K8sObject;
      b(s);
      expect(() => validate(s), b.toString()).toThrow();
    }
  });

  it("the validators can fail: broken objects are rejected", () => {
    const pod = renderCell(desiredRenderCell(cellOf(CELL))).find((o) => o.kind === "Pod") as K8sObject;
    const broken: ((p: any) => void)[] = [
      (p) => (p.spec.containers[0].securityContext.capabilities.drop = "ALL"),
      (p) => (p.spec.containers[0].resources.limits.memory = "lots"),
      (p) => delete p.spec.containers,
      (p) => (p.spec.activeDeadlineSeconds = "2h"),
      (p) => (p.spec.volumes[0].persistentVolumeClaim = {}),
    ];
    for (const b of broken) {
      const p = structuredClone(pod);
      b(p);
      expect(() => new Pod(p as never).validate(), JSON.stringify(b.toString())).toThrow();
    }
    const np = renderCell(desiredRenderCell(cellOf(CELL))).find((o) => o.kind === "NetworkPolicy") as any;
    np.spec.egress[0].ports[0].port = { x: 1 };
    expect(() => new NetworkPolicy(np).validate()).toThrow();
    expect(() => validate({ ...pod, metadata: { ...pod.metadata, name: "Bad_Name" } })).toThrow();
  });
});

describe("kubernetes render: the mapping", () => {
  const objs = renderCell(desiredRenderCell(cellOf(CELL)));
  const pod = (home: string) =>
    objs.find((o) => o.kind === "Pod" && (o.metadata.labels ?? {})["lazarus.dev/member"] === home) as K8sObject;

  it("each member runs non-root, read-only root, no capabilities, no escalation, with the TTL as deadline", () => {
    for (const o of objs.filter((x) => x.kind === "Pod")) {
      const s = podSpecOf(o);
      expect(s.restartPolicy).toBe("Never");
      expect(s.activeDeadlineSeconds).toBe(7200);
      expect(s.automountServiceAccountToken).toBe(false);
      expect(s.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
      for (const c of [...s.containers, ...s.initContainers]) {
        expect(c.securityContext).toEqual({
          allowPrivilegeEscalation: false,
          privileged: false,
          readOnlyRootFilesystem: true,
          runAsNonRoot: true,
          capabilities: { drop: ["ALL"] },
        });
      }
    }
    // A member's own resources replace the cell's (as for the other backends).
    expect(podSpecOf(pod("Worker_1")).containers[0].resources.limits).toEqual({ memory: String(1024 ** 3) });
    expect(podSpecOf(pod("watch")).containers[0].resources.limits).toEqual({
      cpu: "1500m",
      memory: String(512 * 1024 ** 2),
    });
  });

  it("mounts the cell tree by role, as the sandbox backend binds it", () => {
    const mounts = (home: string) =>
      Object.fromEntries(
        podSpecOf(pod(home)).containers[0].volumeMounts.map((m: any) => [
          m.mountPath,
          `${m.subPath ?? m.name}${m.readOnly ? ":ro" : ""}`,
        ]),
      );
    expect(mounts("Worker_1")).toEqual({
      "/cell/project": "project",
      "/cell/shared": "shared",
      "/cell/home/Worker_1": "home/Worker_1",
      "/run/lazarus/secrets": "credentials:ro",
      "/tmp": "tmp",
    });
    expect(mounts("watch")).toEqual({
      "/cell/project": "project:ro",
      "/cell/shared": "shared:ro",
      "/cell/home/watch": "home/watch",
      "/run/lazarus/secrets": "credentials:ro",
      "/tmp": "tmp",
    });
    // A guest: project read-only and its own home; no shared/, no credentials.
    expect(mounts("g")).toEqual({ "/cell/project": "project:ro", "/cell/home/g": "home/g", "/tmp": "tmp" });
    expect(podSpecOf(pod("g")).volumes.map((v: any) => v.name)).toEqual(["tree", "tmp"]);
    expect(podSpecOf(pod("g")).containers[0].env.map((e: any) => e.name)).not.toContain("CELL_CREDENTIALS");
  });

  it("denies ingress always and egress unless declared or network: host", () => {
    const np = (text: string) =>
      renderCell(desiredRenderCell(cellOf(text))).find((o) => o.kind === "NetworkPolicy")?.spec as any;
    expect(np(CELL)).toEqual({
      podSelector: { matchLabels: { "lazarus.dev/cell": "alpha" } },
      policyTypes: ["Ingress", "Egress"],
      ingress: [],
      egress: [{ to: [{ ipBlock: { cidr: "10.0.0.0/8" } }], ports: [{ protocol: "TCP", port: 443 }] }],
    });
    expect(np(CELL.replace("    egress: [{cidr: 10.0.0.0/8, ports: [443]}]\n", "")).egress).toEqual([]);
    expect(np(CELL.replace("  ttl: 2h", "  ttl: 2h\n  network: host")).egress).toEqual([{}]);
  });

  it("never puts a credential's value in the Secret unless given the values", () => {
    const secret = objs[0] as any;
    expect(secret.stringData).toBeUndefined();
    expect(secret.data).toBeUndefined();
    expect(secret.metadata.annotations["lazarus.dev/credentials"]).toBe("API_KEY=env:LAZARUS_SECRET_API_KEY");
    const shown = renderCell(desiredRenderCell(cellOf(CELL), { API_KEY: "s3cret" }))[0] as any;
    expect(JSON.parse(shown.stringData["credentials.json"])).toEqual({
      formatVersion: 1,
      cell: "alpha",
      credentials: { API_KEY: "s3cret" },
    });
  });

  it("labels every object with the cell, members with member and role, and the incarnation when applied", () => {
    for (const o of objs) expect(o.metadata.labels?.["lazarus.dev/cell"]).toBe("alpha");
    expect(pod("Worker_1").metadata.annotations).toEqual({ "lazarus.dev/identity": "agent:Worker_1" });
    const applied = renderCell({ ...desiredRenderCell(cellOf(CELL)), uid: "01JD3XAMPLE" });
    for (const o of applied) expect(o.metadata.labels?.["lazarus.dev/uid"]).toBe("01JD3XAMPLE");
    // An incarnation's own objects never share a name with another incarnation's.
    expect(applied[1]?.metadata.name).toMatch(/^alpha-[0-9a-f]{6}-tree$/);
  });
});

describe("spec.kubernetes: schema and rules", () => {
  const bad: [string, string, RegExp][] = [
    ["no spec.kubernetes", CELL.replace(/  kubernetes:\n(    .*\n)+/, ""), /spec\.kubernetes/],
    ["no image", CELL.replace("    image: registry.example/agent:1\n", ""), /image/],
    ["a namespace that is no DNS label", CELL.replace("namespace: agents", "namespace: Agents_1"), /namespace/],
    ["an unknown workload", CELL.replace("storage: 5Gi", "storage: 5Gi\n    workload: vm"), /workload/],
    ["an unknown field", CELL.replace("storage: 5Gi", "storage: 5Gi\n    replicas: 2"), /replicas|additional/],
    ["root", CELL.replace("storage: 5Gi", "storage: 5Gi\n    runAsUser: 0"), /runAsUser/],
    ["a bad CIDR", CELL.replace("10.0.0.0/8", "ten"), /cidr/],
    [
      "a checkpoint schedule",
      CELL.replace("  ttl: 2h", "  ttl: 2h\n  checkpoint: {schedule: '0 * * * *'}"),
      /not supported yet/,
    ],
    ["a heartbeat", CELL.replace("env: {MODE: fast}", "env: {MODE: fast}, heartbeat: 1m"), /not supported yet/],
    [
      "spec.kubernetes on another backend",
      CELL.replace("backend: kubernetes", "backend: process"),
      /only read by backend kubernetes/,
    ],
  ];
  for (const [what, text, re] of bad) {
    it(`refuses ${what}, at its line`, () => {
      const { errors } = load(text);
      expect(errors.length, what).toBeGreaterThan(0);
      expect(errors.map((e) => `${e.field} ${e.message}`).join("\n")).toMatch(re);
      expect(errors.every((e) => (e.line ?? 0) > 0)).toBe(true);
    });
  }
  it("fills the defaults", () => {
    expect(cellOf(CELL.replace("    storageClass: fast\n    storage: 5Gi\n", "")).kubernetes).toEqual({
      namespace: "agents",
      image: "registry.example/agent:1",
      workload: "pod",
      storage: "1Gi",
      accessMode: "ReadWriteOnce",
      runAsUser: 1000,
      egress: [{ cidr: "10.0.0.0/8", ports: [443] }],
    });
  });
});

describe("lazarus render", () => {
  const dirs: string[] = [];
  afterAll(() => cleanup(...dirs));
  const env = { LAZARUS_SECRET_API_KEY: "s3cret-value" };

  it("prints every object as YAML documents that validate, without the secret", async () => {
    const dir = configDir({ "cells.d/a.yaml": CELL });
    dirs.push(dir);
    const r = await lazarus(["render", "--backend", "kubernetes", "--config", dir], { env });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const docs = parseAllDocuments(r.stdout).map((d) => (d as { toJS(): unknown }).toJS() as K8sObject);
    expect(docs.map((d) => d.kind)).toEqual(["Secret", "PersistentVolumeClaim", "NetworkPolicy", "Pod", "Pod", "Pod"]);
    for (const d of docs) validate(d);
    expect(r.stdout).not.toContain("s3cret-value");
    expect(r.stdout).not.toMatch(/&a\d|\*a\d/); // no YAML anchors: plain documents for any tool
    const again = await lazarus(["render", "--config", dir, "alpha"], { env });
    expect(again.stdout).toBe(r.stdout);
    const shown = await lazarus(["render", "--config", dir, "--show-secrets", "--json"], { env });
    expect(shown.exitCode).toBe(0);
    expect(JSON.parse(shown.stdout)[0].stringData["credentials.json"]).toContain("s3cret-value");
  });

  it("refuses a cell that is not a kubernetes cell, an unknown one, and an invalid config", async () => {
    const dir = configDir({
      "cells.d/a.yaml": CELL,
      "cells.d/b.yaml": CELL.replace("name: alpha", "name: beta")
        .replace(/  backend: kubernetes\n/, "")
        .replace(/  kubernetes:\n(    .*\n)+/, ""),
    });
    dirs.push(dir);
    const other = await lazarus(["render", "--config", dir, "beta"], { env });
    expect(other.exitCode).toBe(1);
    expect(other.stderr).toMatch(/cell beta has backend process/);
    const unknown = await lazarus(["render", "--config", dir, "gamma"], { env });
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr).toMatch(/no cell named gamma/);
    const broken = configDir({ "cells.d/a.yaml": CELL.replace("namespace: agents", "namespace: Agents_1") });
    dirs.push(broken);
    const b = await lazarus(["render", "--config", broken], { env });
    expect(b.exitCode).toBe(1);
    expect(b.stderr).toMatch(/cells\.d\/a\.yaml:\d+:\d+: error: spec\.kubernetes\.namespace/);
    expect(b.stdout).toBe("");
    const help = await lazarus(["render", "--help"]);
    expect(help.stdout).toMatch(/--show-secrets/);
  });

  it("the repository's example renders and validates", () => {
    const file = path.join(import.meta.dirname, "..", "..", "examples", "kubernetes", "cells.d", "agents.yaml");
    const docs = parseAllDocuments(readFileSync(file, "utf8")).map((d) => (d as { toJS(): unknown }).toJS());
    const cell = cellOf(readFileSync(file, "utf8"));
    expect(docs.length).toBe(1);
    for (const o of renderCell(desiredRenderCell(cell))) validate(o);
  });
});
