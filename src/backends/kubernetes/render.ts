// A kubernetes cell as Kubernetes objects: pure, deterministic, no client. `lazarus render` prints
// these; the kubernetes backend applies the same objects (with the cell incarnation's uid and each
// spawn's id added) by server-side apply. docs/kubernetes.md describes the mapping.
import { createHash } from "node:crypto";
import type { KubernetesSpec, Resources, Role } from "../../config/types.js";
import { CELL_ROOT, RUN_DIR, roleMounts } from "../sandbox/argv.js";

export const FIELD_MANAGER = "lazarus";
export const LABEL_CELL = "lazarus.dev/cell";
export const ANNOTATION_EGRESS = "lazarus.dev/egress-allow"; // a cell's egress list, for an egress proxy the operator runs
export const LABEL_UID = "lazarus.dev/uid"; // the cell's incarnation (a re-created cell gets another)
export const LABEL_MEMBER = "lazarus.dev/member";
export const LABEL_ROLE = "lazarus.dev/role";
export const LABEL_SPAWN = "lazarus.dev/spawn";
export const ANNOTATION_IDENTITY = "lazarus.dev/identity";
export const ANNOTATION_CREDENTIALS = "lazarus.dev/credentials";
export const CONTAINER = "member";
// agent-sandbox's Sandbox, its current version (v1alpha1, with spec.replicas, is deprecated).
export const SANDBOX_API = "agents.x-k8s.io/v1beta1";
const CREDENTIALS_KEY = "credentials.json";

export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
} & Record<string, unknown>;

export interface RenderMember {
  identity: string;
  home: string;
  role: Role;
  command?: string[];
  env: Record<string, string>;
  resources: Resources;
  spawnId?: string; // set when applying: the pod's name and label carry it
}

export interface RenderCell {
  name: string;
  uid?: string; // the incarnation, when one exists (apply); render from config has none
  network: "none" | "host" | "egress";
  egress?: string[]; // network egress: the list, rendered for the operator's egress proxy (not enforced here)
  kubernetes: KubernetesSpec;
  deadlineSeconds: number; // the member's activeDeadlineSeconds: what is left of the cell's TTL
  expiresAt?: string; // ISO time the cell's TTL ends (a Sandbox's shutdownTime)
  // The Secret's content: the credentials manifest (apply, render --show-secrets), or only where
  // each credential comes from (render by default: no value is ever printed).
  credentials: { values: Record<string, string> } | { sources: Record<string, string> };
  members: RenderMember[];
}

const hash = (s: string, n = 6): string => createHash("sha256").update(s).digest("hex").slice(0, n);

// A DNS label (RFC 1123) of at most max characters made from text; a hash keeps cut names apart.
export function dnsLabel(text: string, max = 63): string {
  const clean =
    text
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, "-")
      .replace(/-+/g, "-")
      .replace(/^-+|-+$/g, "") || "x";
  if (clean === text && clean.length <= max) return clean;
  const suffix = hash(text);
  return `${clean.slice(0, max - suffix.length - 1).replace(/-+$/, "")}-${suffix}`;
}

// A label value: at most 63 of [A-Za-z0-9._-], alphanumeric at both ends; else a hash of it.
export function labelValue(text: string): string {
  return /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/.test(text) ? text : `h-${hash(text, 16)}`;
}

// The cell's own objects. Applied, their names carry a hash of the incarnation, so a re-created
// cell never takes over (or scrubs) the claim of the one before it; rendered from config (no
// incarnation yet) they are <cell>-credentials, <cell>-tree, <cell>-network.
type CellId = { name: string; uid?: string | undefined };
const cellBase = (c: CellId, room: number): string =>
  c.uid ? `${c.name.slice(0, room - 7)}-${hash(c.uid)}` : c.name.slice(0, room);
export const secretName = (c: CellId): string => `${cellBase(c, 51)}-credentials`;
export const claimName = (c: CellId): string => `${cellBase(c, 58)}-tree`;
export const policyName = (c: CellId): string => `${cellBase(c, 55)}-network`;
// One pod (or Sandbox) per member; a spawn gets its own name, so a restart never waits for the
// deletion of the pod before it.
export function workloadName(cell: string, home: string, spawnId?: string): string {
  const base = dnsLabel(`${cell}-${home}`, spawnId ? 54 : 63);
  return spawnId ? `${base}-${dnsLabel(spawnId).slice(0, 8)}` : base;
}

function cellLabels(c: RenderCell): Record<string, string> {
  return {
    "app.kubernetes.io/managed-by": FIELD_MANAGER,
    [LABEL_CELL]: c.name,
    ...(c.uid ? { [LABEL_UID]: labelValue(c.uid) } : {}),
  };
}

// Memory in bytes as a quantity; cpu in millicores.
export function quantities(r: Resources): Record<string, string> | undefined {
  const q: Record<string, string> = {};
  if (r.cpu !== undefined) q.cpu = `${Math.max(1, Math.round(r.cpu * 1000))}m`;
  if (r.memoryBytes !== undefined) q.memory = String(r.memoryBytes);
  return Object.keys(q).length ? q : undefined;
}

const sorted = <T>(o: Record<string, T>): Record<string, T> =>
  Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

function secret(c: RenderCell): K8sObject {
  const k = c.kubernetes;
  const base: K8sObject = {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: secretName(c), namespace: k.namespace, labels: cellLabels(c) },
    type: "Opaque",
  };
  if ("values" in c.credentials) {
    return {
      ...base,
      stringData: {
        [CREDENTIALS_KEY]: JSON.stringify({
          formatVersion: 1,
          cell: c.name,
          credentials: sorted(c.credentials.values),
        }),
      },
    };
  }
  // Without --show-secrets: no data at all, only the names and sources of the credentials.
  const list = Object.entries(sorted(c.credentials.sources))
    .map(([n, s]) => `${n}=${s}`)
    .join(",");
  return { ...base, metadata: { ...base.metadata, annotations: { [ANNOTATION_CREDENTIALS]: list || "(none)" } } };
}

function claim(c: RenderCell): K8sObject {
  const k = c.kubernetes;
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name: claimName(c), namespace: k.namespace, labels: cellLabels(c) },
    spec: {
      accessModes: [k.accessMode],
      ...(k.storageClass ? { storageClassName: k.storageClass } : {}),
      resources: { requests: { storage: k.storage } },
    },
  };
}

// Ingress is always denied; egress is denied unless the cell opted into the network (host) or
// declared where it may go.
function networkPolicy(c: RenderCell): K8sObject {
  const k = c.kubernetes;
  const egress =
    c.network === "host"
      ? [{}]
      : k.egress.map((e) => ({
          to: [{ ipBlock: { cidr: e.cidr } }],
          ...(e.ports ? { ports: e.ports.map((port) => ({ protocol: "TCP", port })) } : {}),
        }));
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: {
      name: policyName(c),
      namespace: k.namespace,
      labels: cellLabels(c),
      ...(c.network === "egress" ? { annotations: { [ANNOTATION_EGRESS]: (c.egress ?? []).join(",") } } : {}),
    },
    spec: {
      podSelector: { matchLabels: { [LABEL_CELL]: c.name } },
      policyTypes: ["Ingress", "Egress"],
      ingress: [],
      egress,
    },
  };
}

const SECURITY = {
  allowPrivilegeEscalation: false,
  privileged: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  capabilities: { drop: ["ALL"] },
};

type Mounts = ReturnType<typeof roleMounts>;

// The member's home inside the cell's tree.
const homeOf = (m: RenderMember): string => `${CELL_ROOT}/home/${m.home}`;

// The member's environment: its declared env, then the cell's variables (which win), sorted by name.
function memberEnv(c: RenderCell, m: RenderMember, mounts: Mounts, home: string): { name: string; value: string }[] {
  const env: Record<string, string> = {
    ...m.env,
    CELL_ID: c.name,
    CELL_HOME: CELL_ROOT,
    CELL_MEMBER: m.identity,
    CELL_ROLE: m.role,
    ...(mounts.credentials ? { CELL_CREDENTIALS: `${RUN_DIR}/secrets/${CREDENTIALS_KEY}` } : {}),
    HOME: home,
    HERMES_HOME: `${home}/.hermes`,
    TMPDIR: "/tmp",
  };
  return Object.entries(sorted(env)).map(([name, value]) => ({ name, value }));
}

// What the member sees of the cell's tree, as its role allows (spec §6), plus credentials and /tmp.
function memberMounts(m: RenderMember, mounts: Mounts, home: string): Record<string, unknown>[] {
  return [
    {
      name: "tree",
      mountPath: `${CELL_ROOT}/project`,
      subPath: "project",
      ...(mounts.project === "ro" ? { readOnly: true } : {}),
    },
    ...(mounts.shared !== "none"
      ? [
          {
            name: "tree",
            mountPath: `${CELL_ROOT}/shared`,
            subPath: "shared",
            ...(mounts.shared === "ro" ? { readOnly: true } : {}),
          },
        ]
      : []),
    { name: "tree", mountPath: home, subPath: `home/${m.home}` },
    ...(mounts.credentials ? [{ name: "credentials", mountPath: `${RUN_DIR}/secrets`, readOnly: true }] : []),
    { name: "tmp", mountPath: "/tmp" },
  ];
}

// The member's own container: its command in the project dir, limits as requests too.
function memberContainer(c: RenderCell, m: RenderMember): Record<string, unknown> {
  const mounts = roleMounts(m.role);
  const home = homeOf(m);
  const limits = quantities(m.resources);
  return {
    name: CONTAINER,
    image: c.kubernetes.image,
    imagePullPolicy: "IfNotPresent",
    ...(m.command?.length ? { command: [...m.command] } : {}),
    workingDir: `${CELL_ROOT}/project`,
    env: memberEnv(c, m, mounts, home),
    ...(limits ? { resources: { limits, requests: limits } } : {}),
    securityContext: SECURITY,
    volumeMounts: memberMounts(m, mounts, home),
  };
}

// The cell's tree lives on one claim; its dirs are made (as the member's uid, fsGroup-owned)
// before the member starts, so a subPath is never created by the kubelet as root.
function layoutContainer(c: RenderCell, m: RenderMember): Record<string, unknown> {
  return {
    name: "layout",
    image: c.kubernetes.image,
    imagePullPolicy: "IfNotPresent",
    command: ["mkdir", "-p", `${CELL_ROOT}/project`, `${CELL_ROOT}/shared`, homeOf(m)],
    securityContext: SECURITY,
    volumeMounts: [{ name: "tree", mountPath: CELL_ROOT }],
  };
}

// The pod's volumes: the cell's claim, the credentials Secret when the role reads it, an empty /tmp.
function podVolumes(c: RenderCell, mounts: Mounts): Record<string, unknown>[] {
  return [
    { name: "tree", persistentVolumeClaim: { claimName: claimName(c) } },
    ...(mounts.credentials
      ? [
          {
            name: "credentials",
            secret: {
              secretName: secretName(c),
              defaultMode: 0o440,
              items: [{ key: CREDENTIALS_KEY, path: CREDENTIALS_KEY }],
            },
          },
        ]
      : []),
    { name: "tmp", emptyDir: {} },
  ];
}

function podSpec(c: RenderCell, m: RenderMember): Record<string, unknown> {
  const k = c.kubernetes;
  return {
    restartPolicy: "Never", // Lazarus restarts members by their own policy (restart:)
    activeDeadlineSeconds: Math.max(1, c.deadlineSeconds),
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    hostname: dnsLabel(c.name),
    securityContext: {
      runAsNonRoot: true,
      runAsUser: k.runAsUser,
      runAsGroup: k.runAsUser,
      fsGroup: k.runAsUser,
      seccompProfile: { type: "RuntimeDefault" },
    },
    initContainers: [layoutContainer(c, m)],
    containers: [memberContainer(c, m)],
    volumes: podVolumes(c, roleMounts(m.role)),
  };
}

function memberLabels(c: RenderCell, m: RenderMember): Record<string, string> {
  return {
    ...cellLabels(c),
    [LABEL_MEMBER]: labelValue(m.home),
    [LABEL_ROLE]: m.role,
    ...(m.spawnId ? { [LABEL_SPAWN]: labelValue(m.spawnId) } : {}),
  };
}

export function workload(c: RenderCell, m: RenderMember): K8sObject {
  const k = c.kubernetes;
  const name = workloadName(c.name, m.home, m.spawnId);
  const labels = memberLabels(c, m);
  const annotations = { [ANNOTATION_IDENTITY]: m.identity };
  if (k.workload === "sandbox") {
    return {
      apiVersion: SANDBOX_API,
      kind: "Sandbox",
      metadata: { name, namespace: k.namespace, labels, annotations },
      spec: {
        podTemplate: { metadata: { labels, annotations }, spec: podSpec(c, m) },
        ...(c.expiresAt ? { shutdownTime: c.expiresAt, shutdownPolicy: "Retain" } : {}),
        operatingMode: "Running", // v1beta1's pause and resume (Suspended), v1alpha1's replicas 0/1
      },
    };
  }
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: k.namespace, labels, annotations },
    spec: podSpec(c, m),
  };
}

// Every object of the cell in a stable order: Secret, PersistentVolumeClaim, NetworkPolicy, then
// one workload per member with a command, in the order the members are declared.
export function renderCell(c: RenderCell): K8sObject[] {
  return [
    secret(c),
    claim(c),
    networkPolicy(c),
    ...c.members.filter((m) => m.command?.length).map((m) => workload(c, m)),
  ];
}

// The objects the cell holds apart from its members (made when it is prepared, deleted at scrub).
export function cellObjects(c: RenderCell): K8sObject[] {
  return [secret(c), claim(c), networkPolicy(c)];
}
