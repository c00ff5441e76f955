// The few calls Lazarus makes to a Kubernetes API server, through @kubernetes/client-node. The
// library is imported on first use only (it takes about a second to load): plan, validate and
// render of a config without a kubernetes cell never pay for it.
import { LazarusError, errorMessage } from "../../util/errors.js";
import { CONTAINER, FIELD_MANAGER, type K8sObject } from "./render.js";

export interface ClusterTarget {
  kubeconfig?: string | undefined; // a file; unset: $KUBECONFIG, ~/.kube/config or in-cluster
  context?: string | undefined;
}

// What Lazarus reads of a pod.
export interface PodState {
  name: string;
  labels: Record<string, string>;
  phase: string; // Pending, Running, Succeeded, Failed, Unknown
  deleting: boolean; // a deletionTimestamp is set
  createdAt?: number;
  // The member container's end, when it ended: its code, when, and whether it was OOM-killed.
  exit?: { code: number; at: number; oom?: boolean };
}

type Lib = typeof import("@kubernetes/client-node");
type ObjectApi = import("@kubernetes/client-node").KubernetesObjectApi;

let lib: Promise<Lib> | undefined;
const loadLib = (): Promise<Lib> => (lib ??= import("@kubernetes/client-node"));

const statusOf = (err: unknown): number | undefined => {
  const e = err as { code?: unknown; statusCode?: unknown; response?: { statusCode?: unknown } };
  const c = e?.code ?? e?.statusCode ?? e?.response?.statusCode;
  return typeof c === "number" ? c : undefined;
};

export class KubeClient {
  private constructor(
    private readonly api: ObjectApi,
    readonly server: string,
  ) {}

  static async open(t: ClusterTarget): Promise<KubeClient> {
    const k = await loadLib();
    const kc = new k.KubeConfig();
    try {
      if (t.kubeconfig) kc.loadFromFile(t.kubeconfig);
      else kc.loadFromDefault();
      if (t.context) kc.setCurrentContext(t.context);
    } catch (err) {
      throw new LazarusError(
        "KUBECONFIG",
        `cannot load the kubeconfig ${t.kubeconfig ?? "(default)"}${t.context ? ` context ${t.context}` : ""}: ${errorMessage(err)}`,
      );
    }
    const cluster = kc.getCurrentCluster();
    if (!cluster)
      throw new LazarusError(
        "KUBECONFIG",
        `the kubeconfig ${t.kubeconfig ?? "(default)"} names no cluster${t.context ? ` for context ${t.context}` : ""}`,
      );
    return new KubeClient(k.KubernetesObjectApi.makeApiClient(kc), cluster.server);
  }

  // The server's Status message, or only its code and reason where the message might quote a
  // secret's value back (a refused Secret).
  private fail(what: string, err: unknown, secret = false): never {
    const body = (err as { body?: unknown })?.body;
    let status: { message?: string; reason?: string; code?: number } | undefined;
    try {
      status = typeof body === "string" ? (JSON.parse(body) as typeof status) : (body as typeof status);
    } catch {
      status = undefined;
    }
    const code = statusOf(err) ?? status?.code;
    const msg = secret
      ? `HTTP ${code ?? "?"}${status?.reason ? ` ${status.reason}` : ""} (the server's message is not shown: it may quote the Secret)`
      : (status?.message ?? (typeof body === "string" && body ? body.slice(0, 500) : errorMessage(err)));
    throw new LazarusError("KUBERNETES_FAILED", `${what} on ${this.server}: ${msg}`);
  }

  // Server-side apply, field manager lazarus, forcing ownership of the fields Lazarus sets.
  async apply(obj: K8sObject): Promise<void> {
    const k = await loadLib();
    try {
      await this.api.patch(obj, undefined, undefined, FIELD_MANAGER, true, k.PatchStrategy.ServerSideApply);
    } catch (err) {
      this.fail(`cannot apply ${obj.kind} ${obj.metadata.namespace}/${obj.metadata.name}`, err, obj.kind === "Secret");
    }
  }

  // Delete one object; gone already is fine. graceSeconds: the pod's termination grace period.
  async delete(
    apiVersion: string,
    kind: string,
    namespace: string,
    name: string,
    graceSeconds?: number,
  ): Promise<void> {
    try {
      await this.api.delete(
        { apiVersion, kind, metadata: { name, namespace } },
        undefined,
        undefined,
        graceSeconds,
        undefined,
        "Background",
      );
    } catch (err) {
      if (statusOf(err) === 404) return;
      this.fail(`cannot delete ${kind} ${namespace}/${name}`, err);
    }
  }

  async list(apiVersion: string, kind: string, namespace: string, labelSelector: string): Promise<K8sObject[]> {
    try {
      const r = await this.api.list(
        apiVersion,
        kind,
        namespace,
        undefined,
        undefined,
        undefined,
        undefined,
        labelSelector,
      );
      return (r.items ?? []) as unknown as K8sObject[];
    } catch (err) {
      // A kind the cluster does not serve (the Sandbox CRD is not installed) has no objects.
      if (statusOf(err) === 404) return [];
      this.fail(`cannot list ${kind} in ${namespace} (${labelSelector})`, err);
    }
  }

  async pods(namespace: string, labelSelector: string): Promise<PodState[]> {
    return (await this.list("v1", "Pod", namespace, labelSelector)).map(podState);
  }
}

interface RawPod {
  metadata?: {
    name?: string;
    labels?: Record<string, string>;
    deletionTimestamp?: string | Date;
    creationTimestamp?: string | Date;
  };
  status?: {
    phase?: string;
    containerStatuses?: {
      name?: string;
      state?: { terminated?: { exitCode?: number; reason?: string; finishedAt?: string | Date } };
    }[];
  };
}

const ms = (t: string | Date | undefined): number | undefined => (t === undefined ? undefined : new Date(t).getTime());

// A pod as Lazarus sees it: its phase, and its member container's exit once it ended.
export function podState(o: unknown): PodState {
  const p = o as RawPod;
  const term = p.status?.containerStatuses?.find((c) => c.name === CONTAINER)?.state?.terminated;
  const createdAt = ms(p.metadata?.creationTimestamp);
  return {
    name: p.metadata?.name ?? "",
    labels: p.metadata?.labels ?? {},
    phase: p.status?.phase ?? "Pending",
    deleting: p.metadata?.deletionTimestamp !== undefined,
    ...(createdAt !== undefined ? { createdAt } : {}),
    ...(term && typeof term.exitCode === "number"
      ? {
          exit: {
            code: term.exitCode,
            at: ms(term.finishedAt) ?? Date.now(),
            ...(term.reason === "OOMKilled" ? { oom: true } : {}),
          },
        }
      : {}),
  };
}

const clients = new Map<string, Promise<KubeClient>>();

// One client per kubeconfig and context for the whole process.
export function clientFor(t: ClusterTarget): Promise<KubeClient> {
  const key = `${t.kubeconfig ?? ""}\0${t.context ?? ""}`;
  let c = clients.get(key);
  if (!c) {
    c = KubeClient.open(t);
    clients.set(key, c);
    c.catch(() => clients.delete(key));
  }
  return c;
}
