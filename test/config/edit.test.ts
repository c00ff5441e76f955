// Edits of one cell in a cells.d/ file's text (src/config/edit.ts): in place where the layout
// allows, by the Document API otherwise, and always checked by loading the result.
import { describe, expect, it } from "vitest";
import { EditRefused, editCellText, newCellText } from "../../src/config/edit.js";
import { loadFileText } from "../../src/config/load.js";
import { cellNameFor } from "../../src/cli/verbs.js";

const ONE = `apiVersion: lazarus/v1
kind: Cell
metadata:
  name: c-1
spec:
  project: p
  owner: human:x   # the owner
  members:
  - identity: agent:a
    role: executor
`;

describe("editCellText", () => {
  it("splices a block sequence indented at the key's level", () => {
    const r = editCellText("cells.d/c.yaml", ONE, "c-1", {
      op: "add-member",
      member: { identity: "bot:b", role: "observer", command: ["node", "a b.mjs"] },
    });
    expect(r.how).toBe("splice");
    expect(r.text).toBe(`${ONE}  - identity: bot:b\n    role: observer\n    command: ["node", "a b.mjs"]\n`);
  });

  it("removes the only member: members: [] (a block sequence cannot be empty)", () => {
    const r = editCellText("cells.d/c.yaml", ONE, "c-1", { op: "remove-member", identity: "agent:a" });
    expect(r.how).toBe("splice");
    expect(r.text).toBe(ONE.replace("  members:\n  - identity: agent:a\n    role: executor\n", "  members: []\n"));
  });

  it("falls back to the Document API for a layout it does not splice, keeping the other documents and comments", () => {
    // An item whose "-" stands alone on its line.
    const odd = ONE.replace(
      "  - identity: agent:a\n    role: executor\n",
      "  -\n    identity: agent:a\n    role: executor\n",
    );
    const other =
      "---\n# untouched\napiVersion: lazarus/v1\nkind: Cell\nmetadata: {name: c-2}\nspec: {project: q, owner: human:y,   members: []}\n";
    const r = editCellText("cells.d/c.yaml", odd + other, "c-1", {
      op: "add-member",
      member: { identity: "bot:b", role: "observer" },
    });
    expect(r.how).toBe("document");
    expect(r.text.endsWith(other)).toBe(true);
    expect(r.text).toContain("# the owner");
    expect(r.text).toContain("identity: bot:b");
  });

  it("removes the first and the last member of a flow sequence", () => {
    const flow =
      "apiVersion: lazarus/v1\nkind: Cell\nmetadata: {name: c-1}\nspec: {project: p, owner: human:x, members: [{identity: agent:a, role: executor}, {identity: agent:b, role: observer}]}\n";
    const first = editCellText("cells.d/c.yaml", flow, "c-1", { op: "remove-member", identity: "agent:a" });
    expect(first.text).toBe(flow.replace("{identity: agent:a, role: executor}, ", ""));
    const last = editCellText("cells.d/c.yaml", flow, "c-1", { op: "remove-member", identity: "agent:b" });
    expect(last.text).toBe(flow.replace(", {identity: agent:b, role: observer}", ""));
  });

  it("edits a file without a final newline", () => {
    const text = ONE.trimEnd();
    const r = editCellText("cells.d/c.yaml", text, "c-1", {
      op: "add-member",
      member: { identity: "bot:b", role: "observer" },
    });
    expect(r.text).toBe(`${text}\n  - identity: bot:b\n    role: observer\n`);
  });

  it("keeps CRLF line ends", () => {
    const crlf = ONE.replace(/\n/g, "\r\n");
    const add = editCellText("cells.d/c.yaml", crlf, "c-1", {
      op: "add-member",
      member: { identity: "bot:b", role: "observer" },
    });
    expect(add.text).toBe(`${crlf}  - identity: bot:b\r\n    role: observer\r\n`);
    const set = editCellText("cells.d/c.yaml", crlf, "c-1", { op: "set", key: "state", value: "closed" });
    expect(set.text).toBe(crlf.replace("  members:", "  state: closed\r\n  members:"));
    const rm = editCellText("cells.d/c.yaml", crlf, "c-1", { op: "remove-member", identity: "agent:a" });
    expect(rm.text).toBe(
      crlf.replace("  members:\r\n  - identity: agent:a\r\n    role: executor\r\n", "  members: []\r\n"),
    );
  });

  it("refuses an edit the loader refuses, with the diagnostics of the would-be file", () => {
    let caught: unknown;
    try {
      editCellText("cells.d/c.yaml", ONE, "c-1", {
        op: "add-member",
        member: { identity: "bot:b", role: "substitute" },
      });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(EditRefused);
    expect((caught as EditRefused).diagnostics.map((d) => d.message)).toContain(
      "role substitute requires spec.policy.allowSubstitutes: true",
    );
  });
});

describe("new cells", () => {
  it("are named after the project's repository and issue", () => {
    expect(cellNameFor("Timmy_Foundation/timmy-config#262")).toBe("timmy-config-262");
    expect(cellNameFor("Org/Repo")).toBe("repo");
    expect(cellNameFor("Org/__x__#7")).toBe("x-7");
    expect(cellNameFor("Org/#")).toMatch(/^laz-[0-9a-f]{8}$/);
    expect(cellNameFor(`Org/${"a".repeat(80)}-#1`)).toBe("a".repeat(63));
  });

  it("load as written, quoting only what must be", () => {
    const text = newCellText({
      name: "c-1",
      project: "Org/repo#1: x",
      owner: "human:x",
      ttl: "2h",
      members: [{ identity: "agent:a", role: "executor", command: ["node", "it's.mjs"] }],
    });
    expect(text).toContain('  project: "Org/repo#1: x"\n');
    const r = loadFileText("cells.d/c-1.yaml", text);
    expect(r.diagnostics).toEqual([]);
    expect(r.cells[0]).toMatchObject({ name: "c-1", project: "Org/repo#1: x", ttlMs: 2 * 3600_000 });
    expect(r.cells[0]?.members[0]?.command).toEqual(["node", "it's.mjs"]);
  });
});
