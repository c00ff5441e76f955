// Text from the config repo never reaches a terminal as something it obeys or hides: a commit
// subject with an escape sequence and a bidi override is shown escaped by `lazarus sync`, `status`
// and `events` (real git repo, real CLI, a real ledger); a plain-text field (project, labels) holding one through a
// YAML escape is refused at its line; visible() covers C0, C1, DEL and the invisible format
// characters while leaving letters of any script alone.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { visible } from "../../src/config/diagnostics.js";
import { Ledger } from "../../src/ledger/ledger.js";
import { cellYaml, cleanup, configDir, lazarus, tempDir } from "../helpers.js";

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));

// What a terminal would obey or hide: none of it may be printed raw.
const RAW = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/;
const SUBJECT = "fix \x1b[2J\x1b[31mred\x1b[0m and \u202eevil\u202c \u2066x\u2069\u200f\x9b1m";
const SHOWN = "fix \\x1b[2J\\x1b[31mred\\x1b[0m and \\u{202e}evil\\u{202c} \\u{2066}x\\u{2069}\\u{200f}\\x9b1m";

describe("visible()", () => {
  it("escapes C0 (but tab and newline), DEL, C1, bidi controls, marks and zero-width characters", () => {
    expect(visible(SUBJECT)).toBe(SHOWN);
    expect(visible("a\tb\nc\x7f\x85\u061c\u200b\u200e\u2028\u2060\ufeff")).toBe(
      "a\tb\nc\\x7f\\x85\\u{61c}\\u{200b}\\u{200e}\\u{2028}\\u{2060}\\u{feff}",
    );
  });

  it("leaves printable text of any script as it is", () => {
    const text = "café — 日本語 עברית العربية Ελληνικά 🙂 Org/repo#1";
    expect(visible(text)).toBe(text);
  });
});

describe("a commit subject with an escape sequence and a bidi override", () => {
  it("is shown escaped by sync, status and events", async () => {
    const repo = tempDir("lazarus-repo-");
    const state = tempDir("lazarus-state-");
    dirs.push(repo, state);
    const env = {
      GIT_AUTHOR_NAME: "t\x1b[2Jx",
      GIT_AUTHOR_EMAIL: "t@t",
      GIT_COMMITTER_NAME: "t",
      GIT_COMMITTER_EMAIL: "t@t",
    };
    const g = (...args: string[]) => execa("git", ["-C", repo, ...args], { env });
    await g("init", "-q", "-b", "main");
    mkdirSync(path.join(repo, "cells.d"));
    writeFileSync(
      path.join(repo, "cells.d", "a.yaml"),
      cellYaml({ name: "a", members: [{ identity: "human:h", role: "director" }] }),
    );
    await g("add", "-A");
    await g("commit", "-q", "--cleanup=verbatim", "-m", SUBJECT);
    expect((await g("log", "-1", "--format=%s")).stdout).toBe(SUBJECT); // git kept it as written

    const sync = await lazarus(["sync", "--repo", repo, "--state-dir", state], { timeoutMs: 60_000 });
    expect(sync.exitCode, sync.stderr).toBe(0);
    expect(sync.stdout).toContain(SHOWN);
    expect(sync.stdout).not.toMatch(RAW);

    const status = await lazarus(["status", "--state-dir", state]);
    expect(status.stdout).toMatch(
      new RegExp(`^Revision in force: [0-9a-f]{12} ${SHOWN.replace(/[\\[\]{}()^$.*+?|]/g, "\\$&")} from `, "m"),
    );
    expect(status.stdout).not.toMatch(RAW);

    // Subjects are not in the ledger; a reason quoting repo text is (a create's requirements path,
    // a rejected revision's detail): one is appended here as the engine would, then read back.
    await new Ledger(path.join(state, "ledger.jsonl"), path.join(state, "ledger.head.json")).append({
      time: "2026-12-07T00:00:00Z",
      cell: "a",
      action: "update",
      reason: `python venv from ${SUBJECT}`,
    });
    const events = await lazarus(["events", "--state-dir", state]);
    expect(events.stdout).toContain(SHOWN);
    expect(events.stdout).not.toMatch(RAW);
  });
});

describe("lazarus diff", () => {
  it("shows a command argument holding an escape sequence and a bidi override escaped", async () => {
    const repo = tempDir("lazarus-repo-");
    dirs.push(repo);
    const env = { GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@t", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@t" };
    const g = (...args: string[]) => execa("git", ["-C", repo, ...args], { env });
    await g("init", "-q", "-b", "main");
    mkdirSync(path.join(repo, "cells.d"));
    const commit = async (arg: string) => {
      writeFileSync(
        path.join(repo, "cells.d", "a.yaml"),
        cellYaml({ name: "a", members: [{ identity: "agent:a", command: ["/bin/echo", arg] }] }),
      );
      await g("add", "-A");
      await g("commit", "-qm", "c");
      return (await g("rev-parse", "HEAD")).stdout.trim();
    };
    const base = await commit("plain");
    const head = await commit("\x1b[2J\u202eevil");
    const r = await lazarus(["diff", "--repo", repo, "--base", base, "--head", head], { timeoutMs: 60_000 });
    expect(r.exitCode, r.stderr).toBe(2); // differences, as terraform's exit codes say
    expect(r.stdout).toContain("\\u{202e}evil"); // the command is shown as JSON, its bidi override escaped
    expect(r.stdout).not.toMatch(RAW);
  });
});

describe("plain-text fields", () => {
  it('refuse "\\e[2J" in project and "\\u202e" in a label at their lines, and load every other file', async () => {
    const base = cellYaml({ name: "bad", members: [{ identity: "human:h", role: "director" }] });
    const bad = base
      .replace("  project: Org/repo#1", '  project: "Org/repo#1\\e[2J"')
      .replace("  name: bad\n", '  name: bad\n  labels: {team: "a\\u202eb"}\n');
    const config = configDir({
      "cells.d/bad.yaml": bad,
      "cells.d/ok.yaml": cellYaml({ name: "ok", members: [{ identity: "human:h", role: "director" }] }),
    });
    dirs.push(config);
    const lineOf = (needle: string) => bad.split("\n").findIndex((l) => l.includes(needle)) + 1;
    const r = await lazarus(["validate", "--json", "--config", config]);
    expect(r.exitCode).toBe(1);
    const out = JSON.parse(r.stdout) as {
      cells: string[];
      diagnostics: { file: string; line: number; field: string; message: string }[];
    };
    expect(out.cells).toEqual(["ok"]);
    expect(out.diagnostics).toEqual([
      expect.objectContaining({
        file: "cells.d/bad.yaml",
        line: lineOf("labels:"),
        field: "metadata.labels.team",
        message: 'label "team" holds the character U+202E, which a terminal would obey or hide rather than show',
      }),
      expect.objectContaining({
        file: "cells.d/bad.yaml",
        line: lineOf("project:"),
        field: "spec.project",
        message: "the project holds the character U+001B, which a terminal would obey or hide rather than show",
      }),
    ]);
    const text = await lazarus(["validate", "--config", config]);
    expect(text.stderr).toContain(`cells.d/bad.yaml:${lineOf("project:")}:`);
    expect(text.stderr).not.toMatch(RAW);
  });
});
