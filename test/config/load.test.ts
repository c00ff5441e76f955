import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { checkFileText, combine, loadFileText, loadPortfolioText, salvageNames } from "../../src/config/load.js";
import { desiredDigest } from "../../src/config/digest.js";
import { formatDiagnostic } from "../../src/config/diagnostics.js";
import { cellYaml } from "../helpers.js";

const file = "cells.d/a.yaml";

function diagsOf(text: string) {
  return loadFileText(file, text).diagnostics.map(formatDiagnostic);
}

describe("loading cells.d", () => {
  it("applies the documented defaults", () => {
    const r = loadFileText(
      file,
      cellYaml({ name: "c1", members: [{ identity: "human:alexander", role: "director" }] }),
    );
    expect(r.diagnostics).toEqual([]);
    const c = r.cells[0]!;
    expect(c).toMatchObject({
      name: "c1",
      backend: "process",
      state: "active",
      ttlMs: 4 * 3_600_000,
      graceMs: 30 * 60_000,
      retentionMs: 30 * 86_400_000,
    });
    expect(c.policy).toEqual({ allowGuests: false, allowSubstitutes: false });
    expect(c.members[0]).toMatchObject({ identity: "human:alexander", home: "alexander", role: "director", env: {} });
    expect(c.source).toEqual({ file, line: 4, col: 9 });
  });

  it("reads several documents from one file", () => {
    const r = loadFileText(file, `${cellYaml({ name: "one" })}---\n${cellYaml({ name: "two" })}---\n`);
    expect(r.diagnostics).toEqual([]);
    expect(r.cells.map((c) => c.name)).toEqual(["one", "two"]);
    expect(r.cells[1]!.source.line).toBe(cellYaml({ name: "one" }).split("\n").length + 4);
  });

  it.each(["gzip", "zstd"] as const)(
    "reads checkpoint.compression %s, and leaves it unset (the host's default) when absent",
    (compression) => {
      const r = loadFileText(
        file,
        cellYaml({ name: "c1", extra: `  checkpoint: {keep: 3, compression: ${compression}}` }),
      );
      expect(r.diagnostics).toEqual([]);
      expect(r.cells[0]!.checkpoint).toEqual({ keep: 3, compression });
      const plain = loadFileText(file, cellYaml({ name: "c1" }));
      expect(plain.cells[0]!.checkpoint).toEqual({ keep: 5 });
    },
  );

  it("accepts a .tar.zst or .tar.gz checkpoint name in restoreFrom", () => {
    for (const name of ["20261125T120000Z.tar.zst", "20261125T120000Z.tar.gz"])
      expect(diagsOf(cellYaml({ name: "c1", extra: `  restoreFrom: ${name}` }))).toEqual([]);
    expect(diagsOf(cellYaml({ name: "c1", extra: "  restoreFrom: 20261125T120000Z.tar.xz" }))[0]).toContain(
      "is not a checkpoint file name",
    );
  });

  it("names the line and column of an unknown field and says what to do", () => {
    const text = cellYaml({ name: "c1", extra: "  tll: 4h" });
    expect(diagsOf(text)).toEqual([
      'cells.d/a.yaml:8:3: error: spec.tll: unknown field "tll" (remove it or check its spelling against schemas/cell.schema.json)',
    ]);
  });

  it("reports a missing required field at its parent", () => {
    const text = "apiVersion: lazarus/v1\nkind: Cell\nmetadata:\n  name: x\nspec:\n  owner: human:a\n  members: []\n";
    expect(diagsOf(text)).toEqual([
      'cells.d/a.yaml:6:3: error: spec.project: missing required field "project" (add it)',
    ]);
  });

  it.each([
    ["a ttl over 24h", { name: "c1", ttl: "25h" }, "spec.ttl: ttl exceeds the 24h maximum"],
    ["a bad duration", { name: "c1", ttl: "4 hours" }, 'spec.ttl: "4 hours" is not valid'],
    ["a bad name", { name: "Bad_Name" }, 'metadata.name: "Bad_Name" is not valid'],
    [
      "a guest without allowGuests",
      { name: "c1", members: [{ identity: "bot:kimi", role: "guest" }] },
      "role guest requires spec.policy.allowGuests: true",
    ],
    [
      "a substitute without allowSubstitutes",
      {
        name: "c1",
        members: [
          { identity: "agent:a", command: ["x"] },
          { identity: "agent:ezra", role: "substitute", command: ["x"], replaces: "agent:a" },
        ],
      },
      "role substitute requires spec.policy.allowSubstitutes: true",
    ],
    [
      "a substitute replacing no member",
      {
        name: "c1",
        extra: "  policy: {allowSubstitutes: true}",
        members: [{ identity: "agent:ezra", role: "substitute", command: ["x"], replaces: "agent:nobody" }],
      },
      "agent:nobody is not a member of this cell",
    ],
    [
      "replaces on a non-substitute",
      {
        name: "c1",
        members: [
          { identity: "agent:a", command: ["x"] },
          { identity: "agent:b", command: ["x"], replaces: "agent:a" },
        ],
      },
      "only a member with role substitute can replace another",
    ],
    [
      "a bad cron schedule",
      { name: "c1", extra: '  checkpoint: {schedule: "every hour"}' },
      'spec.checkpoint.schedule: "every hour" is not a valid cron expression',
    ],
    ["an inviteTtl over 15m", { name: "c1", extra: "  inviteTtl: 1h" }, "inviteTtl exceeds the 15m maximum"],
    [
      "a bad restoreFrom",
      { name: "c1", extra: "  restoreFrom: yesterday" },
      '"yesterday" is not a checkpoint file name',
    ],
    [
      "an unknown restart policy",
      { name: "c1", members: [{ identity: "agent:a", command: ["x"], restart: "sometimes" }] },
      "spec.members[0].restart: must be one of always, on-failure, never",
    ],
    [
      "an unknown role",
      { name: "c1", members: [{ identity: "agent:ezra", role: "boss" }] },
      "spec.members[0].role: must be one of director, executor, observer, guest, substitute",
    ],
    [
      "a duplicate identity",
      { name: "c1", members: [{ identity: "agent:ezra" }, { identity: "agent:ezra" }] },
      "identity agent:ezra is already declared by spec.members[0]",
    ],
    [
      "a duplicate home name",
      { name: "c1", members: [{ identity: "agent:ezra" }, { identity: "human:ezra", role: "director" }] },
      'home name "ezra" is already used by spec.members[0]',
    ],
    [
      "a reserved env var",
      { name: "c1", members: [{ identity: "agent:ezra", command: ["x"], env: { HOME: "/root" } }] },
      "HOME is set by Lazarus and cannot be overridden",
    ],
    ["an unsupported backend", { name: "c1", extra: "  backend: docker" }, 'backend "docker" is not supported yet'],
    [
      "an unknown checkpoint compression",
      { name: "c1", extra: "  checkpoint: {compression: xz}" },
      "spec.checkpoint.compression: must be one of gzip, zstd",
    ],
  ])("rejects %s with file, line and column", (_what, opts, message) => {
    const d = diagsOf(cellYaml(opts));
    expect(d.length).toBe(1);
    expect(d[0]).toMatch(/^cells\.d\/a\.yaml:\d+:\d+: error: /);
    expect(d[0]).toContain(message);
  });

  it.each([
    ["spec.downedTimeout", { name: "c1", extra: "  downedTimeout: soon" }],
    [
      "spec.members[0].heartbeat",
      { name: "c1", members: [{ identity: "agent:a", command: ["x"], heartbeat: "2 minutes" }] },
    ],
  ])("says what a duration looks like for %s", (field, opts) => {
    expect(diagsOf(cellYaml(opts))[0]).toMatch(
      new RegExp(`${field.replace(/[.[\]]/g, "\\$&")}: .* is not valid \\(use a duration such as 90s`),
    );
  });

  it("points a portfolio's unknown field at the portfolio schema", () => {
    const r = loadPortfolioText(
      "portfolios/p.yaml",
      "apiVersion: lazarus/v1\nkind: Portfolio\nmetadata: {name: p}\nspec:\n  models: [{model: m, provider: p}]\n  retry: {}\n",
    );
    expect(r.diagnostics.map(formatDiagnostic)).toEqual([
      'portfolios/p.yaml:6:3: error: spec.retry: unknown field "retry" (remove it or check its spelling against schemas/portfolio.schema.json)',
    ]);
  });

  it("refuses a container user that is root, another cell's uid or a host account (in-container uids are host uids)", async () => {
    const saved = process.env.LAZARUS_UID_RANGE;
    process.env.LAZARUS_UID_RANGE = "240500-240599";
    try {
      // The host step: whether a uid is the host's is this host's to say.
      const userErrors = async (user: string) =>
        (
          await checkFileText(
            file,
            cellYaml({
              name: "c1",
              extra: `  backend: container\n  container: {image: localhost/agent:1, user: "${user}"}`,
            }),
          )
        ).diagnostics
          .filter((d) => d.field === "spec.container.user")
          .map(formatDiagnostic);
      expect(await userErrors("0")).toEqual([
        expect.stringMatching(
          /^cells\.d\/a\.yaml:\d+:\d+: error: spec.container.user: user "0": uid 0 is root.*host's root/,
        ),
      ]);
      expect(await userErrors("261901:0")).toEqual([
        expect.stringMatching(/error: spec.container.user: user "261901:0": gid 0 is root/),
      ]);
      expect(await userErrors("240550")).toEqual([
        expect.stringMatching(
          /error: spec.container.user: user "240550": uid 240550 is in LAZARUS_UID_RANGE \(240500-240599\).*another cell/,
        ),
      ]);
      expect(await userErrors("261901:240550")).toEqual([
        expect.stringMatching(/error: spec.container.user: user "261901:240550": gid 240550 is in LAZARUS_UID_RANGE/),
      ]);
      // An account and a group of this host (any but root's).
      const entry = (db: string) =>
        readFileSync(`/etc/${db}`, "utf8")
          .split("\n")
          .map((l) => l.split(":"))
          .find((f) => Number(f[2]) > 0) as string[];
      const [account, , uid] = entry("passwd");
      const [group, , gid] = entry("group");
      expect(await userErrors(`${uid}`)).toEqual([
        expect.stringMatching(
          new RegExp(`error: spec.container.user: user "${uid}": uid ${uid} is the host's account ${account}`),
        ),
      ]);
      expect(await userErrors(`261901:${gid}`)).toEqual([
        expect.stringMatching(
          new RegExp(`error: spec.container.user: user "261901:${gid}": gid ${gid} is the host's group ${group}`),
        ),
      ]);
      expect(await userErrors("261901:261901")).toEqual([]);
      expect(await userErrors("261901")).toEqual([]);
    } finally {
      if (saved === undefined) delete process.env.LAZARUS_UID_RANGE;
      else process.env.LAZARUS_UID_RANGE = saved;
    }
  });

  it("refuses a backend the operator's LAZARUS_BACKENDS leaves out (backend: process runs as Lazarus's own user)", () => {
    const saved = process.env.LAZARUS_BACKENDS;
    process.env.LAZARUS_BACKENDS = "sandbox, container";
    try {
      const backendErrors = (extra: string) =>
        loadFileText(file, cellYaml({ name: "c1", extra }))
          .diagnostics.filter((d) => d.field === "spec.backend" && /LAZARUS_BACKENDS/.test(d.message))
          .map(formatDiagnostic);
      expect(backendErrors("")).toEqual([
        expect.stringMatching(
          /^cells\.d\/a\.yaml:\d+:\d+: error: spec\.backend: backend process is not allowed on this host \(LAZARUS_BACKENDS=sandbox, container\)/,
        ),
      ]);
      expect(backendErrors("  backend: process")).toHaveLength(1);
      expect(backendErrors("  backend: sandbox")).toEqual([]);
      delete process.env.LAZARUS_BACKENDS;
      expect(backendErrors("")).toEqual([]); // unset: every backend, as before
    } finally {
      if (saved === undefined) delete process.env.LAZARUS_BACKENDS;
      else process.env.LAZARUS_BACKENDS = saved;
    }
  });

  it("refuses network: host where the operator's LAZARUS_HOST_NETWORK=deny", () => {
    const saved = process.env.LAZARUS_HOST_NETWORK;
    try {
      const netErrors = (extra: string) =>
        loadFileText(file, cellYaml({ name: "c1", extra }))
          .diagnostics.filter((d) => d.field === "spec.network")
          .map(formatDiagnostic);
      delete process.env.LAZARUS_HOST_NETWORK;
      expect(netErrors("  network: host")).toEqual([]); // unset: allowed, as before
      process.env.LAZARUS_HOST_NETWORK = "deny";
      expect(netErrors("  network: host")).toEqual([
        expect.stringMatching(
          /^cells\.d\/a\.yaml:\d+:\d+: error: spec\.network: network: host is not allowed on this host \(LAZARUS_HOST_NETWORK=deny\)/,
        ),
      ]);
      expect(netErrors("  network: none")).toEqual([]);
    } finally {
      if (saved === undefined) delete process.env.LAZARUS_HOST_NETWORK;
      else process.env.LAZARUS_HOST_NETWORK = saved;
    }
  });

  it("reports YAML syntax errors with a position", () => {
    const d = diagsOf("apiVersion: lazarus/v1\nkind: Cell\nmetadata: {name: x\n");
    expect(d[0]).toMatch(/^cells\.d\/a\.yaml:\d+:\d+: error: YAML syntax/);
  });

  it("rejects duplicate keys", () => {
    const d = diagsOf("apiVersion: lazarus/v1\napiVersion: lazarus/v1\nkind: Cell\n");
    expect(d[0]).toContain("YAML syntax");
  });

  it("quarantines every file that declares the same cell, naming both places", () => {
    const a = loadFileText("cells.d/a.yaml", cellYaml({ name: "dup" }));
    const b = loadFileText("cells.d/b.yaml", `${cellYaml({ name: "other" })}---\n${cellYaml({ name: "dup" })}`);
    const c = loadFileText("cells.d/c.yaml", cellYaml({ name: "fine" }));
    const { desired, diagnostics } = combine([a, b, c], new Map());
    expect([...desired.cells.keys()]).toEqual(["fine"]);
    expect(desired.quarantined.map((q) => q.file)).toEqual(["cells.d/a.yaml", "cells.d/b.yaml"]);
    expect(desired.quarantined[1]!.names).toEqual(["dup", "other"]);
    expect(diagnostics.map(formatDiagnostic).join("\n")).toMatch(
      /cells\.d\/a\.yaml:4:9: error: metadata\.name: cell "dup" is also declared at cells\.d\/b\.yaml:\d+/,
    );
  });

  it("salvages cell names from a file that does not parse", () => {
    expect(salvageNames("metadata:\n  name: alpha\n  labels: {\nspec: [\nmetadata:\n  name: 'beta'\n")).toEqual([
      "alpha",
      "beta",
    ]);
  });

  it("gives the same digest to a reformatted, reordered or moved declaration", () => {
    const a = loadFileText("cells.d/a.yaml", cellYaml({ name: "c1", ttl: "4h" })).cells[0]!;
    const reformatted = [
      "# moved and reformatted",
      "kind: Cell",
      "apiVersion: 'lazarus/v1'",
      "spec:",
      "  members:",
      `  - {role: executor, identity: "agent:allegro", command: ${JSON.stringify(a.members[0]!.command)}}`,
      "  owner: human:alexander",
      "  project: Org/repo#1",
      "  ttl: 240m",
      "metadata: {name: c1}",
    ].join("\n");
    const r = loadFileText("cells.d/z.yaml", reformatted);
    expect(r.diagnostics).toEqual([]);
    expect(desiredDigest(r.cells[0]!)).toBe(desiredDigest(a));
  });
});
