// backend: kubernetes through the real CLI against a STAND-IN API server (kube-standin.ts: no
// Kubernetes API server can run on this machine and no cluster is reachable, so a small HTTP
// server on 127.0.0.1 answers the calls Lazarus makes as the API server documents them). It
// proves the requests Lazarus sends (server-side apply with field manager lazarus, the objects,
// the kubeconfig's context and token, deletes) and that pod phases drive the plan: a Failed pod
// is restarted per its member's policy, a Succeeded one under restart: never is not, an
// OOMKilled container is reported as oom. What a real cluster does with them is not proved here.
import { existsSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanup, configDir, lazarus, readRecord, tempDir } from "../helpers.js";
import { StandIn } from "./kube-standin.js";

const cellText = (state = "active", image = "registry.example/agent:1") => `apiVersion: lazarus/v1
kind: Cell
metadata: {name: kube}
spec:
  project: Org/repo#1
  owner: human:alex
  backend: kubernetes
  state: ${state}
  ttl: 2h
  grace: 1m
  credentials:
    API_KEY: {env: LAZARUS_SECRET_API_KEY}
  kubernetes:
    namespace: agents
    image: ${image}
    kubeconfig: ./kubeconfig
    context: stand-in
  members:
    - {identity: agent:a, role: executor, command: [agent, a], restart: on-failure}
    - {identity: agent:b, role: executor, command: [agent, b], restart: never}
    - {identity: human:alex, role: director}
`;

describe("kubernetes backend against a stand-in API server", () => {
  const api = new StandIn();
  let config = "";
  let state = "";
  const secrets = tempDir("lazarus-secrets-"); // the operator's secrets root: the kubeconfig lives there
  const env = { LAZARUS_SECRET_API_KEY: "s3cret-value", LAZARUS_SECRETS_DIR: secrets };
  const run = (args: string[]) => lazarus([...args, "--config", config, "--state-dir", state], { env });
  const podOf = (member: string) => api.pods().find((p) => p.metadata.labels?.["lazarus.dev/member"] === member);

  beforeAll(async () => {
    await api.start();
    config = configDir({ "cells.d/kube.yaml": cellText() });
    api.writeKubeconfig(path.join(secrets, "kubeconfig"));
    state = tempDir("lazarus-state-");
  });
  afterAll(async () => {
    await api.stop();
    cleanup(config, state, secrets);
  });

  it("plan does not load the client; apply creates the objects by server-side apply", async () => {
    // The client is loaded on first use only: not by plan, validate or render of a cell that does
    // not run yet (a module hook lists what of it each command loads).
    const trace = path.join(state, "trace");
    writeFileSync(trace, "");
    const traced = (args: string[]) =>
      lazarus([...args, "--config", config], {
        env: {
          ...env,
          LAZARUS_TRACE_FILE: trace,
          NODE_OPTIONS: `--import ${path.join(import.meta.dirname, "..", "fixtures", "trace-client-node.mjs")}`,
        },
      });
    for (const args of [["plan", "--state-dir", state], ["validate"], ["render"]])
      expect((await traced(args)).exitCode).toBe(0);
    expect(readFileSync(trace, "utf8")).toBe("");
    expect(api.requests).toEqual([]); // planning a cell that does not exist yet reads no cluster

    const r = await traced(["apply", "--yes", "--state-dir", state]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(readFileSync(trace, "utf8")).toMatch(/@kubernetes\/client-node\/dist\/index\.js/); // the hook sees it when it is loaded
    const patches = api.requests.filter((q) => q.method === "PATCH");
    expect(patches.map((q) => `${q.body?.kind}/${q.body?.metadata.name}`).slice(0, 3)).toEqual([
      expect.stringMatching(/^Secret\/kube-[0-9a-f]{6}-credentials$/),
      expect.stringMatching(/^PersistentVolumeClaim\/kube-[0-9a-f]{6}-tree$/),
      expect.stringMatching(/^NetworkPolicy\/kube-[0-9a-f]{6}-network$/),
    ]);
    for (const q of patches) {
      expect(q.contentType).toBe("application/apply-patch+yaml");
      expect(q.query).toMatchObject({ fieldManager: "lazarus", force: "true" });
      expect(q.authorization).toBe("Bearer stand-in-token"); // the context named, not current-context
      expect(q.path).toMatch(/^\/(api\/v1|apis\/networking\.k8s\.io\/v1)\/namespaces\/agents\//);
    }
    // One pod per member with a command, labelled with the cell incarnation, member and spawn.
    const rec = readRecord(path.join(state, "cells", "kube"));
    const pods = api.pods();
    expect(pods.map((p) => p.metadata.labels?.["lazarus.dev/member"]).sort()).toEqual(["a", "b"]);
    for (const p of pods) {
      const m = rec.members.find((x) => x.home === p.metadata.labels?.["lazarus.dev/member"]);
      expect(p.metadata.labels).toMatchObject({
        "lazarus.dev/cell": "kube",
        "lazarus.dev/uid": rec.uid,
        "lazarus.dev/spawn": m?.spawnId,
      });
      expect(m?.handle).toBe(`agents/${p.metadata.name}`);
      expect(m?.pid).toBeUndefined();
      expect(p.spec.activeDeadlineSeconds).toBeGreaterThan(7100);
      expect(p.spec.activeDeadlineSeconds).toBeLessThanOrEqual(7200);
    }
    // The value goes to the cluster's Secret only: never to Lazarus's output or ledger.
    const secret = patches[0]?.body as any;
    expect(JSON.parse(secret.stringData["credentials.json"]).credentials).toEqual({ API_KEY: "s3cret-value" });
    expect(r.stdout).not.toContain("s3cret-value");
    const ledger = await run(["ledger", "--json"]);
    expect(ledger.stdout).not.toContain("s3cret-value");
  });

  it("observes pod phases: running pods need nothing", async () => {
    for (const p of api.pods()) api.setPod(p.metadata.name, "Running");
    const n = api.requests.length;
    const plan = await run(["plan", "--json"]);
    expect(plan.exitCode).toBe(0);
    expect(JSON.parse(plan.stdout).actions).toEqual([]);
    const reads = api.requests.slice(n).filter((q) => q.method === "GET" && q.path.endsWith("/pods"));
    expect(reads.length).toBeGreaterThan(0);
    expect(reads[0]?.query.labelSelector).toMatch(/^lazarus\.dev\/cell=kube,lazarus\.dev\/uid=/);
    // A checkpoint is refused plainly, and the cell stays active (not stuck in checkpointing).
    const cp = await run(["checkpoint", "kube"]);
    expect(cp.exitCode).toBe(1);
    expect(cp.stderr).toMatch(/checkpoints of a kubernetes cell are not supported yet/);
    expect(readRecord(path.join(state, "cells", "kube")).state).toBe("active");
    const status = await run(["status"]);
    expect(status.stdout).toMatch(
      new RegExp(`agent:a\\s+executor\\s+running\\s+pod agents/${podOf("a")?.metadata.name}`),
    );
  });

  it("a Failed pod is restarted per policy; a Succeeded one under restart: never is not", async () => {
    const a = podOf("a")?.metadata.name as string;
    api.setPod(a, "Failed", { exitCode: 3, reason: "Error" });
    api.setPod(podOf("b")?.metadata.name as string, "Succeeded", { exitCode: 0, reason: "Completed" });
    const plan = JSON.parse((await run(["plan", "--json"])).stdout) as {
      actions: { action: string; member?: string; reason: string }[];
    };
    const of = (m: string) => plan.actions.filter((x) => x.member === m).map((x) => `${x.action}: ${x.reason}`);
    expect(of("agent:a")).toEqual([
      "member-down: agent:a: exited with code 3",
      expect.stringMatching(/^restart: agent:a: restart after backoff/),
    ]);
    expect(of("agent:b")).toEqual(["member-down: agent:b: exited with code 0"]);

    const n = api.requests.length;
    const r = await run(["apply", "--yes"]);
    expect(r.exitCode).toBe(0);
    // Apply again after the backoff, as the daemon would, until agent:a has a new pod.
    const later = new Date(Date.now() + 10 * 60_000).toISOString();
    await run(["apply", "--yes", "--now", later]);
    const rec = readRecord(path.join(state, "cells", "kube"));
    const ma = rec.members.find((m) => m.identity === "agent:a");
    expect(ma?.restarts).toBeGreaterThanOrEqual(1);
    const since = api.requests.slice(n);
    // The old pod of a is deleted, a new one is applied under a new spawn id.
    expect(since.some((q) => q.method === "DELETE" && q.path.endsWith(`/pods/${a}`))).toBe(true);
    const newPod = podOf("a");
    expect(newPod?.metadata.name).not.toBe(a);
    expect(newPod?.metadata.labels?.["lazarus.dev/spawn"]).toBe(ma?.spawnId);
    expect(rec.members.find((m) => m.identity === "agent:b")?.status).toBe("exited");
  });

  it("a changed spec.kubernetes re-applies the cell's objects and restarts running members into it", async () => {
    const old = podOf("a")?.metadata.name as string;
    api.setPod(old, "Running");
    writeFileSync(path.join(config, "cells.d", "kube.yaml"), cellText("active", "registry.example/agent:2"));
    const now = new Date(Date.now() + 10.5 * 60_000).toISOString();
    const plan = JSON.parse((await run(["plan", "--json", "--now", now])).stdout) as {
      actions: { action: string; reason: string }[];
    };
    expect(plan.actions).toEqual([
      expect.objectContaining({ action: "update", reason: "spec.kubernetes changed (members restart)" }),
    ]);
    const n = api.requests.length;
    expect((await run(["apply", "--yes", "--now", now])).exitCode).toBe(0);
    const since = api.requests.slice(n);
    expect(since.filter((q) => q.method === "PATCH").map((q) => q.body?.kind)).toEqual([
      "Secret",
      "PersistentVolumeClaim",
      "NetworkPolicy",
      "Pod",
    ]);
    expect(since.some((q) => q.method === "DELETE" && q.path.endsWith(`/pods/${old}`))).toBe(true);
    expect(podOf("a")?.spec.containers[0].image).toBe("registry.example/agent:2");
    expect(podOf("b")).toBeDefined(); // exited under restart: never: left as it is
  });

  it("an OOMKilled container is reported as oom", async () => {
    api.setPod(podOf("a")?.metadata.name as string, "Failed", { exitCode: 137, reason: "OOMKilled" });
    const plan = JSON.parse(
      (await run(["plan", "--json", "--now", new Date(Date.now() + 11 * 60_000).toISOString()])).stdout,
    ) as { actions: { action: string; member?: string; reason: string }[] };
    const down = plan.actions.find((x) => x.action === "member-down" && x.member === "agent:a");
    expect(down?.reason).toBe("agent:a: killed by its memory limit (OOM, exit code 137)");
  });

  it("close deletes the pods gracefully; scrub deletes the Secret, claim and NetworkPolicy", async () => {
    writeFileSync(path.join(config, "cells.d", "kube.yaml"), cellText("closed", "registry.example/agent:2"));
    const n = api.requests.length;
    const now = new Date(Date.now() + 12 * 60_000);
    const r = await run(["apply", "--yes", "--now", now.toISOString()]);
    expect(r.stdout).toMatch(/close/);
    expect(r.exitCode, r.stdout).toBe(0);
    expect(api.pods()).toEqual([]);
    const deletes = api.requests.slice(n).filter((q) => q.method === "DELETE");
    expect(deletes.some((q) => q.path.includes("/pods/") && Number(q.query.gracePeriodSeconds) > 0)).toBe(true);
    expect([...api.objects.keys()].map((k) => k.split("/")[0]).sort()).toEqual([
      "networkpolicies",
      "persistentvolumeclaims",
      "secrets",
    ]);

    // After the grace: scrub.
    const s = await run(["apply", "--yes", "--now", new Date(now.getTime() + 5 * 60_000).toISOString()]);
    expect(s.exitCode).toBe(0);
    expect([...api.objects.keys()]).toEqual([]);
  });
});

describe("kubernetes backend: an unreachable cluster", () => {
  it("holds the members as recorded and says why, instead of restarting them", async () => {
    const api = new StandIn();
    await api.start();
    const config = configDir({ "cells.d/kube.yaml": cellText() });
    const secrets = tempDir("lazarus-secrets-");
    api.writeKubeconfig(path.join(secrets, "kubeconfig"));
    const state = tempDir("lazarus-state-");
    const env = { LAZARUS_SECRET_API_KEY: "v", LAZARUS_SECRETS_DIR: secrets };
    try {
      expect((await lazarus(["apply", "--yes", "--config", config, "--state-dir", state], { env })).exitCode).toBe(0);
      await api.stop(); // the cluster goes away
      const plan = await lazarus(["plan", "--json", "--config", config, "--state-dir", state], { env });
      expect(plan.exitCode).toBe(0);
      const out = JSON.parse(plan.stdout) as {
        actions: unknown[];
        diagnostics: { severity: string; field?: string; message: string }[];
      };
      expect(out.actions).toEqual([]);
      const warned = out.diagnostics.filter(
        (d) => d.severity === "warning" && /^cluster not read \(.*127\.0\.0\.1/.test(d.message),
      );
      expect(warned.map((d) => d.field).sort()).toEqual(["kube agent:a", "kube agent:b"]);
    } finally {
      cleanup(config, state, secrets);
    }
  });
});

describe("kubernetes backend: workload sandbox", () => {
  it("applies one Sandbox per member, observes the pod its controller makes, deletes the Sandboxes at close", async () => {
    const api = new StandIn();
    await api.start();
    const text = cellText().replace("    context: stand-in\n", "    context: stand-in\n    workload: sandbox\n");
    const config = configDir({ "cells.d/kube.yaml": text });
    const secrets = tempDir("lazarus-secrets-");
    api.writeKubeconfig(path.join(secrets, "kubeconfig"));
    const state = tempDir("lazarus-state-");
    const env = { LAZARUS_SECRET_API_KEY: "v", LAZARUS_SECRETS_DIR: secrets };
    const run = (args: string[]) => lazarus([...args, "--config", config, "--state-dir", state], { env });
    try {
      const t0 = Date.now();
      expect((await run(["apply", "--yes"])).exitCode).toBe(0);
      const t1 = Date.now();
      const sandboxes = api.requests.filter(
        (q) => q.method === "PATCH" && q.path.includes("/apis/agents.x-k8s.io/v1beta1/namespaces/agents/sandboxes/"),
      );
      expect(sandboxes).toHaveLength(2);
      const rec = readRecord(path.join(state, "cells", "kube"));
      for (const q of sandboxes) {
        expect(q.query).toMatchObject({ fieldManager: "lazarus", force: "true" });
        // The cell's TTL from when the member started (the wall clock, as the cluster counts it).
        const shutdown = Date.parse(q.body?.spec.shutdownTime);
        expect(shutdown).toBeGreaterThanOrEqual(Math.floor(t0 / 1000) * 1000 + 7_200_000);
        expect(shutdown).toBeLessThanOrEqual(t1 + 7_200_000);
        expect(q.body?.spec.podTemplate.metadata.labels["lazarus.dev/uid"]).toBe(rec.uid);
      }
      expect(api.pods()).toEqual([]); // no pod of Lazarus's own: the controller makes them
      api.controllerPass();
      const plan = JSON.parse((await run(["plan", "--json"])).stdout) as { actions: unknown[] };
      expect(plan.actions).toEqual([]);
      // The controller's pod ends: the member is down and restarts by its policy.
      api.setPod(
        api.pods().find((p) => p.metadata.labels?.["lazarus.dev/member"] === "a")?.metadata.name as string,
        "Failed",
        { exitCode: 2 },
      );
      const down = JSON.parse((await run(["plan", "--json"])).stdout) as {
        actions: { action: string; member?: string }[];
      };
      expect(down.actions.map((a) => `${a.action} ${a.member}`)).toEqual(["member-down agent:a", "restart agent:a"]);

      writeFileSync(path.join(config, "cells.d", "kube.yaml"), text.replace("state: active", "state: closed"));
      expect((await run(["apply", "--yes"])).exitCode).toBe(0);
      expect([...api.objects.keys()].filter((k) => k.startsWith("sandboxes/"))).toEqual([]);
      api.controllerPass();
      expect(api.pods()).toEqual([]);
    } finally {
      await api.stop();
      cleanup(config, state, secrets);
    }
  });
});

describe("kubernetes backend: a refused Secret", () => {
  it("fails the create with the server's code and reason, never its message (it may quote the value)", async () => {
    const api = new StandIn();
    await api.start();
    api.refuse = {
      plural: "secrets",
      message: (b) => `Secret "x" is invalid: stringData: Invalid value: ${JSON.stringify(b.stringData)}`,
    };
    const config = configDir({ "cells.d/kube.yaml": cellText() });
    const secrets = tempDir("lazarus-secrets-");
    api.writeKubeconfig(path.join(secrets, "kubeconfig"));
    const state = tempDir("lazarus-state-");
    const env = { LAZARUS_SECRET_API_KEY: "s3cret-value", LAZARUS_SECRETS_DIR: secrets };
    try {
      const r = await lazarus(["apply", "--yes", "--config", config, "--state-dir", state], { env });
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toMatch(
        /cannot apply Secret agents\/kube-[0-9a-f]{6}-credentials on https:\/\/127\.0\.0\.1:\d+: HTTP 422 Invalid/,
      );
      const ledger = await lazarus(["ledger", "--json", "--state-dir", state]);
      for (const text of [r.stdout, r.stderr, ledger.stdout]) expect(text).not.toContain("s3cret-value");
      expect(api.pods()).toEqual([]); // nothing of the cell runs half-built
    } finally {
      await api.stop();
      cleanup(config, state, secrets);
    }
  });
});

describe("kubernetes backend: the kubeconfig comes from the operator", () => {
  it("refuses a kubeconfig outside the secrets root at its line, and never runs the exec plugin of one a cell file brought", async () => {
    // What a committer could try: a kubeconfig in the config repo whose user runs a command on the
    // Lazarus host (client-go's exec credential plugin), or any kubeconfig file of the host.
    const marker = path.join(tempDir("lazarus-marker-"), "ran");
    const plugin = [
      "apiVersion: v1",
      "kind: Config",
      "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]",
      `users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: /bin/sh, args: [-c, 'touch ${marker}']}}}]`,
      "contexts: [{name: stand-in, context: {cluster: c, user: u}}]",
      "current-context: stand-in",
      "",
    ].join("\n");
    const config = configDir({ "cells.d/kube.yaml": cellText(), kubeconfig: plugin });
    const secrets = tempDir("lazarus-secrets-");
    const state = tempDir("lazarus-state-");
    const line =
      cellText()
        .split("\n")
        .findIndex((l) => l.includes("kubeconfig:")) + 1;
    try {
      const cases: [string, Record<string, string>, RegExp][] = [
        ["./kubeconfig", {}, /kubeconfig files are read only from a secrets root, and none is set/],
        ["./kubeconfig", { LAZARUS_SECRETS_DIR: secrets }, /"\.\/kubeconfig" does not exist under the secrets root/],
        [
          path.join(config, "kubeconfig"),
          { LAZARUS_SECRETS_DIR: secrets },
          /is an absolute path; kubeconfig files are read only from under the secrets root/,
        ],
        [`../${path.basename(config)}/kubeconfig`, { LAZARUS_SECRETS_DIR: secrets }, /climbs out with "\.\."/],
      ];
      for (const [file, extra, why] of cases) {
        writeFileSync(
          path.join(config, "cells.d", "kube.yaml"),
          cellText().replace("kubeconfig: ./kubeconfig", `kubeconfig: ${file}`),
        );
        const env = { LAZARUS_SECRET_API_KEY: "v", ...extra };
        const v = await lazarus(["validate", "--config", config], { env });
        expect(v.exitCode, file).toBe(1);
        expect(v.stdout + v.stderr).toMatch(
          new RegExp(`cells\\.d/kube\\.yaml:${line}:\\d+: error: spec\\.kubernetes\\.kubeconfig: .*${why.source}`),
        );
        const a = await lazarus(["apply", "--yes", "--config", config, "--state-dir", state], { env });
        expect(a.exitCode, file).not.toBe(0);
      }
      // a link under the secrets root that leads out of it is refused as well
      symlinkSync(path.join(config, "kubeconfig"), path.join(secrets, "linked"));
      writeFileSync(
        path.join(config, "cells.d", "kube.yaml"),
        cellText().replace("kubeconfig: ./kubeconfig", "kubeconfig: linked"),
      );
      const linked = await lazarus(["apply", "--yes", "--config", config, "--state-dir", state], {
        env: { LAZARUS_SECRET_API_KEY: "v", LAZARUS_SECRETS_DIR: secrets },
      });
      expect(linked.stdout + linked.stderr).toMatch(/"linked" leads outside the secrets root/);
      expect(existsSync(marker)).toBe(false); // the plugin never ran
      expect(existsSync(path.join(state, "cells", "kube"))).toBe(false); // and no cell was made
    } finally {
      cleanup(config, state, secrets, path.dirname(marker));
    }
  });
});
