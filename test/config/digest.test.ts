// canonicalJson is written out by hand for speed; the digests already recorded on disk (closed
// cells, the ledger's hash chain) require it to give exactly what the original definition gave.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalJson, desiredDigest, sha256 } from "../../src/config/digest.js";
import { loadFileText } from "../../src/config/load.js";
import type { DesiredCell } from "../../src/config/types.js";
import { cellYaml } from "../helpers.js";

// The original definition: JSON.stringify with a replacer that sorts every object's keys.
const reference = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );

describe("canonicalJson", () => {
  it("gives exactly the original definition's text on arbitrary values", () => {
    const key = fc.oneof(
      fc.string(),
      fc.constantFrom(
        "0",
        "1",
        "2",
        "10",
        "9",
        "01",
        "-1",
        "1.5",
        "4294967294",
        "4294967295",
        "__proto__",
        "a",
        "B",
        "é",
        "\u{1F600}",
        "",
      ),
    );
    const leaf = fc.oneof(
      fc.string(),
      fc.double(),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.constant(undefined),
      fc.date({ noInvalidDate: true }),
      fc.constant(() => 1),
    );
    const value = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: "small" },
        leaf,
        fc.array(tie("node"), { maxLength: 4 }),
        fc.dictionary(key, tie("node"), { maxKeys: 6 }),
      ),
    })).node;
    fc.assert(
      fc.property(value, (v) => {
        expect(canonicalJson(v)).toBe(reference(v));
      }),
      { numRuns: 5000 },
    );
  });

  it("sorts keys at every depth, index-like keys first as objects order them", () => {
    const v = { b: 1, a: [{ z: 1, y: undefined, x: null }], 10: "ten", 9: "nine", "01": 0 };
    expect(canonicalJson(v)).toBe('{"9":"nine","10":"ten","01":0,"a":[{"x":null,"z":1}],"b":1}');
    expect(canonicalJson(v)).toBe(reference(v));
    expect(canonicalJson([undefined, () => 1, Number.NaN, -0, Number.POSITIVE_INFINITY])).toBe(
      "[null,null,null,0,null]",
    );
  });
});

describe("canonicalJson's kept key orders", () => {
  it("sorts objects with the same keys in other orders alike, however often each order recurs", () => {
    const keys = ["m", "b", "__x", "a", "10", "2", "Z", "é"];
    const perms = fc.sample(fc.shuffledSubarray(keys, { minLength: keys.length }), 200);
    // Far more orders of the same eight keys than are kept, each seen many times, mixed with
    // objects of other keys of the same count.
    for (let round = 0; round < 3; round++)
      for (const order of perms) {
        const o = Object.fromEntries(order.map((k, i) => [k, i]));
        expect(canonicalJson(o)).toBe(reference(o));
        const other = Object.fromEntries(order.map((k, i) => [`${k}${round}`, i]));
        expect(canonicalJson(other)).toBe(reference(other));
      }
  });
});

// desiredDigest as first written (object rest): digests recorded in closed cells' tombstones and
// the ledger must not change with how it is computed.
const formerDigest = (d: DesiredCell): string => {
  const { source: _source, members, credentialsAt: _at, credentialsValueDigest: _values, python, ...rest } = d;
  const py = python
    ? { python: { requirements: python.requirements, findLinks: python.findLinks, digest: python.digest } }
    : {};
  return sha256(
    canonicalJson({
      ...rest,
      ...py,
      members: members.map(({ source: _s, commandSource: _c, resolvedPortfolio: _p, ...m }) => m),
    }),
  ).slice(0, 16);
};

describe("desiredDigest", () => {
  it("is the former definition's digest, for plain and for fully specified cells", () => {
    const text = [
      cellYaml({ name: "plain" }),
      "---",
      "apiVersion: lazarus/v1\nkind: Cell\nmetadata: {name: full, labels: {team: a, tier: '1'}}\nspec:\n  project: Org/repo#1\n  owner: human:alexander\n  ttl: 4h\n  grace: 1h\n  credentials: {API_KEY: {env: HOST_KEY}}\n  checkpoint: {schedule: '0 * * * *', keep: 3}\n  policy: {allowGuests: true}\n  members:\n    - identity: agent:allegro\n      role: executor\n      command: [node, a.mjs]\n      env: {B: '2', A: '1'}\n      heartbeat: 30s\n    - identity: human:alexander\n      role: director\n",
    ].join("\n");
    const { cells, diagnostics } = loadFileText("cells.d/a.yaml", text);
    expect(diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    expect(cells).toHaveLength(2);
    const full = cells[1] as DesiredCell;
    const variants: DesiredCell[] = [
      ...cells,
      {
        ...full,
        python: {
          requirements: "req.txt",
          findLinks: "wheels",
          digest: "abc",
          at: full.source,
        } as DesiredCell["python"] & object,
        credentialsValueDigest: "v",
      },
      { ...full, members: full.members.map((m) => ({ ...m, resolvedPortfolio: { name: "p" } as never })) },
    ];
    for (const c of variants) expect(desiredDigest(c)).toBe(formerDigest(c));
    expect(desiredDigest(variants[2] as DesiredCell)).not.toBe(desiredDigest(full)); // python counts
    expect(desiredDigest(variants[3] as DesiredCell)).toBe(desiredDigest(full)); // a resolved portfolio does not
  });
});
