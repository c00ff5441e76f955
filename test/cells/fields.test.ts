// The table of cell fields (src/cells/fields.ts) names every field of schemas/cell.schema.json,
// and each update row both sees a change of its field and, once synced, sees none.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  MEMBER_FIELDS,
  OTHER_FIELDS,
  UPDATE_FIELDS,
  cellChanges,
  processChange,
  syncMember,
  syncRecord,
} from "../../src/cells/fields.js";
import { setDisk } from "../../src/apply/ops.js";
import type { DesiredCell } from "../../src/config/types.js";
import { REGISTRY } from "../../src/backends/table.js";
import type { CellRecord } from "../../src/cells/record.js";
import { desiredOf, recordOf } from "../plan/builders.js";
import { ROOT } from "../helpers.js";

type Node = Record<string, unknown>;
const SCHEMA = JSON.parse(readFileSync(path.join(ROOT, "schemas", "cell.schema.json"), "utf8")) as Node;

// A $ref of this schema ("#/definitions/x/properties/y"), followed.
function resolve(root: Node, node: Node): Node {
  let n = node;
  while (typeof n.$ref === "string") {
    n = (n.$ref as string)
      .replace(/^#\//, "")
      .split("/")
      .reduce<Node>((o, k) => o[k] as Node, root);
  }
  return n;
}

// Every field a cell file can write, dotted ("spec.checkpoint.keep", "spec.members[].env"): a
// mapping with declared properties is gone into; an array of such mappings too, as name[]; any
// other value (a scalar, a free-form map, a list of scalars) is one field. A value that may be
// either (spec.network: none, host or {egress: [...]}) is a field and has fields.
export function schemaFields(root: Node, node: Node = root, at = ""): string[] {
  const n = resolve(root, node);
  const shapes = [n, ...((n.oneOf ?? n.anyOf ?? []) as Node[]).map((x) => resolve(root, x))];
  const out: string[] = [];
  let leaf = false;
  for (const s of shapes) {
    const items = s.type === "array" && s.items ? resolve(root, s.items as Node) : undefined;
    if (s.properties)
      for (const [k, v] of Object.entries(s.properties as Record<string, Node>))
        out.push(...schemaFields(root, v, at ? `${at}.${k}` : k));
    else if (items?.properties) out.push(...schemaFields(root, items, `${at}[]`));
    else if (s !== n || !(n.oneOf ?? n.anyOf)) leaf = true;
  }
  return leaf && at ? [at, ...out] : out;
}

const rowPaths = (): string[] => [...UPDATE_FIELDS, ...OTHER_FIELDS, ...MEMBER_FIELDS].flatMap((r) => r.paths);

// Schema fields that no row names, each with what to do.
export function missingRows(schema: Node): string[] {
  const named = new Set(rowPaths());
  return schemaFields(schema)
    .filter((f) => !named.has(f))
    .map(
      (f) =>
        `schema field ${f} (schemas/cell.schema.json) is in no row of src/cells/fields.ts: add it to an update row (recorded, compared, said in plan), to MEMBER_FIELDS (a member's), or to OTHER_FIELDS with the action that follows a change`,
    );
}

describe("the table of cell fields", () => {
  it("names every field of the cell schema, members' fields included", () => {
    expect(schemaFields(SCHEMA)).toContain("spec.members[].heartbeat");
    expect(schemaFields(SCHEMA)).toContain("spec.kubernetes.egress[].cidr");
    expect(missingRows(SCHEMA)).toEqual([]);
  });

  it("fails, naming it, for a schema field added without a row", () => {
    const schema = structuredClone(SCHEMA) as {
      properties: { spec: { properties: Node } };
      definitions: { member: { properties: Node } };
    };
    schema.properties.spec.properties.quota = { type: "string" };
    schema.definitions.member.properties.nice = { type: "integer" };
    const missing = missingRows(schema as unknown as Node);
    expect(missing).toHaveLength(2);
    expect(missing.find((m) => m.includes("spec.quota"))).toMatch(
      /^schema field spec\.quota \(schemas\/cell\.schema\.json\) is in no row of src\/cells\/fields\.ts/,
    );
    expect(missing.find((m) => m.includes(".nice"))).toMatch(/^schema field spec\.members\[\]\.nice /);
  });

  it("is what each backend claims: its fields and its replacements name rows marked backend", () => {
    const updates = new Set(UPDATE_FIELDS.filter((r) => r.backend).map((r) => r.field));
    const replaces = new Set(OTHER_FIELDS.filter((r) => r.by === "replace" && r.backend).flatMap((r) => r.paths));
    for (const b of REGISTRY) {
      expect(
        b.capabilities.cellFields.filter((f) => !updates.has(f)),
        b.name,
      ).toEqual([]);
      expect(
        b.capabilities.replacedBy.filter((p) => !replaces.has(p)),
        b.name,
      ).toEqual([]);
    }
  });

  it("marks step exactly the fields update runs a step of its own for (src/apply/ops.ts)", () => {
    const ops = readFileSync(path.join(ROOT, "src", "apply", "ops.ts"), "utf8");
    const stepped = [...ops.matchAll(/a\.fields\.includes\("(\w+)"\)/g)].map((m) => m[1]);
    expect(new Set(stepped)).toEqual(new Set(UPDATE_FIELDS.filter((r) => r.step).map((r) => r.field)));
  });

  it("names no field twice, nor one the schema lacks", () => {
    const all = rowPaths();
    expect(all.filter((p, i) => all.indexOf(p) !== i)).toEqual([]);
    const fields = new Set(schemaFields(SCHEMA));
    expect(all.filter((p) => !fields.has(p))).toEqual([]);
    const names = UPDATE_FIELDS.map((r) => r.field);
    expect(names.filter((f, i) => names.indexOf(f) !== i)).toEqual([]);
  });
});

// One declared change per update row, on the base cell (a process cell with one agent). A new row
// needs one here: the test below fails, naming the field, until it has one.
const KUBE = {
  namespace: "ns",
  image: "img:1",
  workload: "pod" as const,
  storage: "1Gi",
  accessMode: "ReadWriteOnce" as const,
  runAsUser: 1000,
  egress: [],
};
const IMAGE = { image: "localhost/agent:1", readOnlyRootfs: true };
const at = { file: "cells.d/test.yaml", line: 1, col: 1 };
const egress = (...hosts: string[]): DesiredCell["egress"] => ({
  declared: hosts,
  entries: hosts.map((host) => ({ host, ports: [80, 443] })),
  auto: [],
});
const remote = (identityFile: string): DesiredCell["remote"] => ({
  host: "h",
  identityFile,
  knownHosts: "/k",
  target: { host: "h", port: 22, identityFile, knownHosts: "/k", root: "~/.lazarus/cells" },
});
const SAMPLES: Record<string, { before?: Partial<DesiredCell>; after: Partial<DesiredCell> }> = {
  labels: { after: { labels: { team: "a" } } },
  owner: { after: { owner: "human:ezra" } },
  network: { before: { backend: "sandbox" }, after: { backend: "sandbox", network: "host" } },
  egress: {
    before: { backend: "sandbox", network: "egress", egress: egress("a.org") },
    after: { backend: "sandbox", network: "egress", egress: egress("a.org", "b.org") },
  },
  kubernetes: {
    before: { backend: "kubernetes", kubernetes: KUBE },
    after: { backend: "kubernetes", kubernetes: { ...KUBE, storage: "2Gi" } },
  },
  container: {
    before: { backend: "container", container: IMAGE },
    after: { backend: "container", container: { ...IMAGE, readOnlyRootfs: false } },
  },
  grace: { after: { graceMs: 1000 } },
  retention: { after: { retentionMs: 1000 } },
  policy: { after: { policy: { allowGuests: true, allowSubstitutes: true } } },
  credentials: { after: { credentials: { TOKEN: { env: "TOKEN" } } } },
  downedTimeout: { after: { downedTimeoutMs: 1000 } },
  inviteTtl: { after: { inviteTtlMs: 1000 } },
  checkpoint: { after: { checkpoint: { keep: 5, maxBytes: 1 << 30 } } },
  python: { after: { python: { digest: "abc" } } },
  logs: { after: { logs: { maxBytes: 1 << 20 } } },
  budget: { after: { budget: { tokens: 1000, periodMs: 3_600_000 } } },
  progress: { after: { progress: { sliceMs: 180_000, onStall: "restart" } } },
  push: { after: { push: { branch: "feature/login" } } },
  disk: {
    before: { backend: "sandbox" },
    after: { backend: "sandbox", disk: { bytes: 1 << 25, declared: true, enforced: true, at } },
  },
  remote: { before: { backend: "remote", remote: remote("/a") }, after: { backend: "remote", remote: remote("/b") } },
};

const base = desiredOf({
  name: "c1",
  members: [{ identity: "agent:allegro", role: "executor", command: ["x"] }],
}).cells.get("c1")!;

// The record apply leaves for d: the table's sync, and what its own steps record (the venv once
// built, the disk image once made: src/runtime/python.ts, setDisk).
function applied(d: DesiredCell, rec: CellRecord = recordOf(d)): CellRecord {
  syncRecord(rec, d);
  if (d.python?.digest) rec.python = { digest: d.python.digest };
  else delete rec.python;
  setDisk(rec, d);
  return rec;
}

describe("each update row", () => {
  it("has a sample change here", () => {
    expect(UPDATE_FIELDS.map((r) => r.field).filter((f) => !SAMPLES[f])).toEqual([]);
  });

  it.each(UPDATE_FIELDS.map((r) => [r.field]))(
    "%s: a change plans an update of it alone, and once applied, nothing",
    (field) => {
      const sample = SAMPLES[field]!;
      const before: DesiredCell = { ...base, ...sample.before };
      const rec = applied(before);
      expect(cellChanges({ d: before, rec })).toEqual([]);
      const after: DesiredCell = { ...base, ...sample.after };
      expect(cellChanges({ d: after, rec }).map((c) => c.field)).toEqual([field]);
      applied(after, rec);
      expect(cellChanges({ d: after, rec })).toEqual([]);
    },
  );
});

// One change per member row that restarts the member's process (a new row needs one here).
const PROCESS_SAMPLES: Record<string, { change: Partial<DesiredCell["members"][number]>; why: string }> = {
  "spec.members[].command": { change: { command: ["y"] }, why: "command changed" },
  "spec.members[].env": { change: { env: { A: "1" } }, why: "env changed" },
  "spec.members[].resources.memory": { change: { resources: { memoryBytes: 1 << 28 } }, why: "resources changed" },
};

describe("each member row of a process field", () => {
  const member = base.members[0]!;
  it.each(MEMBER_FIELDS.filter((r) => r.restartFor).map((r) => [r.paths[0]!]))(
    "%s: a change restarts the member, and once synced, nothing",
    (first) => {
      const sample = PROCESS_SAMPLES[first];
      expect(sample, `add a sample change for ${first} to PROCESS_SAMPLES`).toBeDefined();
      const m = recordOf(base).members[0]!;
      syncMember(m, member);
      expect(processChange(member, m)).toBeUndefined();
      const changed = { ...member, ...sample!.change };
      expect(processChange(changed, m)).toBe(sample!.why);
      syncMember(m, changed);
      expect(processChange(changed, m)).toBeUndefined();
    },
  );
});
