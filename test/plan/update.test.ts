// What plan says when a declared field of a live cell changes: which update fields, in which
// order, with which reason (plan --json prints both). The planner is pure, so the cells here are
// plain values: a loaded process cell, changed the way another declaration would load.
import { describe, expect, it } from "vitest";
import { plan } from "../../src/plan/plan.js";
import type { DesiredCell } from "../../src/config/types.js";
import type { CellRecord } from "../../src/cells/record.js";
import type { EgressEntry } from "../../src/egress/allow.js";
import { desiredOf, observedOf, recordOf, T0 } from "./builders.js";

const AGENT = { identity: "agent:allegro", role: "executor", command: ["node", "a.js"] };
const base = desiredOf({ name: "c1", members: [AGENT] }).cells.get("c1")!;
const at = { file: "cells.d/test.yaml", line: 1, col: 1 };
const entry = (host: string): EgressEntry => ({ host, ports: [80, 443] });
const egress = (...hosts: string[]): DesiredCell["egress"] => ({
  declared: hosts,
  entries: hosts.map(entry),
  auto: [],
});
const KUBE = {
  namespace: "ns",
  image: "img:1",
  workload: "pod" as const,
  storage: "1Gi",
  accessMode: "ReadWriteOnce" as const,
  runAsUser: 1000,
  egress: [],
};
const remote = (host: string, identityFile: string): DesiredCell["remote"] => ({
  host,
  identityFile,
  knownHosts: "/k",
  target: { host, port: 22, identityFile, knownHosts: "/k", root: "~/.lazarus/cells" },
});
const IMAGE = { image: "localhost/agent:1", readOnlyRootfs: true };

interface Case {
  name: string;
  d: Partial<DesiredCell>; // the declaration, over the base cell
  rec?: Partial<CellRecord>; // the record, over the one apply wrote for the base cell (with d's backend)
  disk?: { mounted: boolean; size: number; avail: number };
  fields: string[];
  reason?: string;
}

const cases: Case[] = [
  { name: "nothing changed", d: {}, fields: [] },
  { name: "labels", d: { labels: { team: "a" } }, fields: ["labels"], reason: "labels changed" },
  { name: "owner", d: { owner: "human:ezra" }, fields: ["owner"], reason: "owner changed" },
  { name: "grace", d: { graceMs: 60_000 }, fields: ["grace"], reason: "grace changed" },
  { name: "retention", d: { retentionMs: 60_000 }, fields: ["retention"], reason: "retention changed" },
  {
    name: "policy",
    d: { policy: { allowGuests: true, allowSubstitutes: false } },
    fields: ["policy"],
    reason: "policy changed",
  },
  { name: "downedTimeout", d: { downedTimeoutMs: 60_000 }, fields: ["downedTimeout"], reason: "downedTimeout changed" },
  { name: "inviteTtl", d: { inviteTtlMs: 60_000 }, fields: ["inviteTtl"], reason: "inviteTtl changed" },
  {
    name: "checkpoint schedule",
    d: { checkpoint: { schedule: "0 * * * *", keep: 5 } },
    fields: ["checkpoint"],
    reason: "checkpoint changed",
  },
  { name: "checkpoint keep", d: { checkpoint: { keep: 2 } }, fields: ["checkpoint"], reason: "checkpoint changed" },
  {
    name: "checkpoint compression",
    d: { checkpoint: { keep: 5, compression: "gzip" } },
    fields: ["checkpoint"],
    reason: "checkpoint changed",
  },
  {
    name: "checkpoint maxSize",
    d: { checkpoint: { keep: 5, maxBytes: 1024 } },
    fields: ["checkpoint"],
    reason: "checkpoint changed",
  },
  { name: "logs", d: { logs: { keep: 1 } }, fields: ["logs"], reason: "logs changed" },
  {
    name: "credential sources",
    d: { credentials: { TOKEN: { env: "TOKEN" } } },
    fields: ["credentials"],
    reason: "credentials changed (redacted)",
  },
  {
    name: "credential values rotated",
    d: { credentialsValueDigest: "new" },
    rec: { credentialsValueDigest: "old" },
    fields: ["credentials"],
    reason: "credentials rotated",
  },
  { name: "credential values first known", d: { credentialsValueDigest: "new" }, fields: [] },
  {
    name: "python venv added",
    d: { python: { digest: "d1" } },
    fields: ["python"],
    reason: "python venv new (a bare venv; built, then members restart)",
  },
  {
    name: "python venv changed",
    d: { python: { digest: "d2", requirements: "r.txt" } },
    rec: { python: { digest: "d1" } },
    fields: ["python"],
    reason: "python venv d1 → d2 (requirements r.txt; built, then members restart)",
  },
  {
    name: "python venv removed",
    d: {},
    rec: { python: { digest: "d1" } },
    fields: ["python"],
    reason: "python venv removed (members restart)",
  },
  { name: "network of a process cell (not its to use)", d: { network: "host" }, fields: [] },
  {
    name: "network of a sandbox cell",
    d: { backend: "sandbox", network: "host" },
    fields: ["network"],
    reason: "network none → host (members restart)",
  },
  {
    name: "network of a sandbox cell to an egress list",
    d: {
      backend: "sandbox",
      network: "egress",
      egress: {
        declared: ["a.org"],
        entries: [entry("a.org")],
        auto: [{ entry: entry("api.anthropic.com"), why: "provider anthropic" }],
      },
    },
    fields: ["network"],
    reason: "network none → egress (a.org; automatic: api.anthropic.com for provider anthropic) (members restart)",
  },
  {
    name: "egress list of a sandbox cell",
    d: { backend: "sandbox", network: "egress", egress: egress("a.org", "b.org") },
    rec: { network: "egress", egress: [entry("a.org"), entry("c.org")] },
    fields: ["egress"],
    reason: "egress list + b.org, - c.org (applies to new connections; members keep running)",
  },
  {
    name: "egress list as recorded",
    d: { backend: "container", container: IMAGE, network: "egress", egress: egress("a.org") },
    rec: { network: "egress", egress: [entry("a.org")], container: IMAGE },
    fields: [],
  },
  {
    name: "container user",
    d: { backend: "container", container: { ...IMAGE, user: "5000" } },
    rec: { container: IMAGE },
    fields: ["container"],
    reason: "container localhost/agent:1 → localhost/agent:1 (members restart)",
  },
  {
    name: "kubernetes spec",
    d: { backend: "kubernetes", kubernetes: { ...KUBE, storage: "2Gi" } },
    rec: { kubernetes: KUBE },
    fields: ["kubernetes"],
    reason: "spec.kubernetes changed (members restart)",
  },
  {
    name: "kubernetes network",
    d: { backend: "kubernetes", kubernetes: KUBE, network: "host" },
    rec: { kubernetes: KUBE },
    fields: ["network"],
    reason: "network none → host (members restart)",
  },
  { name: "kubernetes spec of a process cell (not its to use)", d: { kubernetes: KUBE }, fields: [] },
  {
    name: "disk quota new",
    d: { backend: "sandbox", disk: { bytes: 32 * 1024 ** 2, declared: true, enforced: true, at } },
    fields: ["disk"],
    reason: "disk quota none → 32Mi (the cell's files move onto its image; members restart)",
  },
  {
    name: "disk quota grown",
    d: { backend: "sandbox", disk: { bytes: 64 * 1024 ** 2, declared: true, enforced: true, at } },
    rec: { disk: { bytes: 32 * 1024 ** 2 } },
    disk: { mounted: true, size: 32 * 1024 ** 2, avail: 30 * 1024 ** 2 },
    fields: ["disk"],
    reason: "disk quota 32Mi → 64Mi (the image grows; members restart)",
  },
  {
    name: "disk image not mounted",
    d: { backend: "sandbox", disk: { bytes: 32 * 1024 ** 2, declared: true, enforced: true, at } },
    rec: { disk: { bytes: 32 * 1024 ** 2 } },
    disk: { mounted: false, size: 0, avail: 0 },
    fields: ["disk"],
    reason: "disk image of 32Mi not mounted: mounted again before members start",
  },
  {
    name: "disk quota not enforced",
    d: { disk: { bytes: 32 * 1024 ** 2, declared: true, enforced: false, at } },
    fields: [],
  },
  {
    name: "remote key file",
    d: { backend: "remote", remote: remote("h", "/keys/b") },
    rec: { remote: remote("h", "/keys/a")!.target! },
    fields: ["remote"],
    reason: "remote identityFile changed (the next connection uses it; members keep running)",
  },
  {
    name: "remote host (another host is not followed)",
    d: { backend: "remote", remote: remote("h2", "/keys/a") },
    rec: { remote: remote("h", "/keys/a")!.target! },
    fields: [],
  },
  {
    name: "several fields, in the table's order",
    d: {
      logs: { keep: 1 },
      owner: "human:ezra",
      labels: { team: "a" },
      graceMs: 60_000,
      credentials: { TOKEN: { env: "TOKEN" } },
    },
    fields: ["labels", "owner", "grace", "credentials", "logs"],
    reason: "labels changed, owner changed, grace changed, credentials changed (redacted), logs changed",
  },
];

function planned(c: Case) {
  const d: DesiredCell = { ...base, ...c.d };
  const rec = recordOf({ ...base, backend: d.backend }, T0, c.rec ?? {});
  const observed = observedOf({ record: rec });
  if (c.disk) observed.cells.get("c1")!.live!.disk = c.disk;
  const desired = desiredOf({ name: "c1", members: [AGENT] });
  desired.cells.set("c1", d);
  return plan(desired, observed, T0 + 60_000);
}

describe("an update of a live cell", () => {
  it.each(cases)("$name", (c) => {
    const updates = planned(c).actions.filter((a) => a.kind === "update");
    if (c.fields.length === 0) return expect(updates).toEqual([]);
    expect(updates).toHaveLength(1);
    const u = updates[0] as Extract<(typeof updates)[number], { kind: "update" }>;
    expect(u.fields).toEqual(c.fields);
    expect(u.reason).toBe(c.reason);
  });
});

describe("a live remote cell moved to another place", () => {
  const moved = (target: Partial<NonNullable<ReturnType<typeof remote>>["target"]>) => {
    const was = remote("h", "/keys/a")!.target!;
    const d = remote("h", "/keys/a")!;
    d.target = { ...d.target!, ...target };
    return planned({ name: "", d: { backend: "remote", remote: d }, rec: { remote: was }, fields: [] });
  };
  it("is an error at spec.remote that says what to do, and plans no update", () => {
    for (const change of [{ host: "h2" }, { user: "other" }, { port: 2222 }, { root: "/elsewhere" }]) {
      const p = moved(change);
      const errors = p.diagnostics.filter((x) => x.severity === "error");
      expect(errors).toHaveLength(1);
      expect(errors[0]!.field).toBe("spec.remote");
      expect(errors[0]!.message).toMatch(/lives on .*cannot move to/);
      expect(errors[0]!.hint).toMatch(/state: closed/);
      expect(p.actions.filter((a) => a.kind === "update" || a.kind === "close")).toEqual([]);
    }
  });
  it("is no error when only its key files change", () => {
    expect(moved({ identityFile: "/keys/b" }).diagnostics.filter((x) => x.severity === "error")).toEqual([]);
  });
});

describe("a member's process", () => {
  const restartOf = (change: Partial<DesiredCell["members"][number]>) => {
    const d: DesiredCell = { ...base, members: [{ ...base.members[0]!, ...change }] };
    const desired = desiredOf({ name: "c1", members: [AGENT] });
    desired.cells.set("c1", d);
    return plan(desired, observedOf({ record: recordOf(base) }), T0 + 60_000).actions.map(
      (a) => `${a.kind}: ${a.reason}`,
    );
  };
  it("restarts for its command, env or limits, and says which", () => {
    expect(restartOf({ command: ["node", "b.js"] })).toEqual(["restart: agent:allegro: command changed"]);
    expect(restartOf({ env: { A: "1" } })).toEqual(["restart: agent:allegro: env changed"]);
    expect(restartOf({ resources: { memoryBytes: 1 << 28 } })).toEqual(["restart: agent:allegro: resources changed"]);
    expect(restartOf({ restart: "always", heartbeatMs: 60_000 })).toEqual([]);
  });
});
