// Credentials come from the operator (a secrets root, prefixed variables), never from whoever
// commits to cells.d/: anything else is an error at its line and its cell is held; a rotated
// secret reaches the cell on the next reconcile without its value showing anywhere.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cellYaml, cleanup, configDir, lazarus, readRecord, tempDir } from "../helpers.js";

const dirs: string[] = [];
afterAll(() => cleanup(...dirs));
const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();
const human = (name: string, credentials: string) =>
  cellYaml({
    name,
    members: [{ identity: "human:alexander", role: "director" }],
    extra: `  credentials:\n${credentials}`,
  });

function setup(files: Record<string, string>) {
  const state = tempDir("lazarus-state-");
  const secrets = tempDir("lazarus-secrets-");
  const config = configDir(files);
  dirs.push(state, secrets, config);
  const run = (args: string[], env: Record<string, string> = {}) =>
    lazarus([...args, "--config", config, "--state-dir", state], { env: { LAZARUS_SECRETS_DIR: secrets, ...env } });
  const manifest = (cell: string) =>
    JSON.parse(readFileSync(path.join(state, "cells", cell, ".lazarus", "secrets", "credentials.json"), "utf8"))
      .credentials as Record<string, string>;
  return { state, secrets, config, run, manifest };
}

describe("credential sources", () => {
  it("refuses, at its line, any source that is not the operator's", async () => {
    const { secrets, run } = setup({
      "cells.d/a.yaml": human(
        "a",
        "    ABS: {file: /etc/hostname}\n    UP: {file: ../escape}\n    LINK: {file: link}\n    HOST: {env: HOME}",
      ),
    });
    symlinkSync("/etc/hostname", path.join(secrets, "link"));
    const r = await run(["validate"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(
      /cells\.d\/a\.yaml:9:\d+: error: spec\.credentials\.ABS\.file: "\/etc\/hostname" is an absolute path; file credentials are read only from under the secrets root/,
    );
    expect(r.stderr).toMatch(
      /cells\.d\/a\.yaml:10:\d+: error: spec\.credentials\.UP\.file: "\.\.\/escape" climbs out with "\.\."/,
    );
    expect(r.stderr).toMatch(
      /cells\.d\/a\.yaml:11:\d+: error: spec\.credentials\.LINK\.file: "link" leads outside the secrets root .* \(through a symbolic link\)/,
    );
    expect(r.stderr).toMatch(
      /cells\.d\/a\.yaml:12:\d+: error: spec\.credentials\.HOST\.env: variable HOME does not start with LAZARUS_SECRET_.*\(use a variable named like LAZARUS_SECRET_HOME/,
    );
  });

  it("refuses a file credential when no secrets root is set, saying how to set one", async () => {
    const { config } = setup({ "cells.d/a.yaml": human("a", "    T: {file: token}") });
    const r = await lazarus(["validate", "--config", config]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(
      "spec.credentials.T.file: file credentials are read only from a secrets root, and none is set (start Lazarus with --secrets-dir DIR or LAZARUS_SECRETS_DIR=DIR",
    );
  });

  it("accepts the operator's prefix and a link that stays inside the secrets root", async () => {
    const { secrets, run } = setup({
      "cells.d/a.yaml": human("a", "    T: {file: team/token}\n    L: {file: alias}\n    E: {env: OPS_X}"),
    });
    mkdirSync(path.join(secrets, "team"));
    writeFileSync(path.join(secrets, "team", "token"), "t\n");
    symlinkSync("team/token", path.join(secrets, "alias"));
    const r = await run(["validate"], { LAZARUS_CREDENTIAL_ENV_PREFIX: "OPS_,LAZARUS_SECRET_", OPS_X: "x" });
    expect(r.exitCode, r.stderr).toBe(0);
  });

  it("writes a credential named __proto__ into the manifest like any other, and sees it rotate", async () => {
    const { run, manifest, state } = setup({
      "cells.d/a.yaml": human("a", "    __proto__: {env: LAZARUS_SECRET_P}\n    OTHER: {env: LAZARUS_SECRET_O}"),
    });
    expect(
      (await run(["apply", "--yes", "--now", T(0)], { LAZARUS_SECRET_P: "p1", LAZARUS_SECRET_O: "o1" })).exitCode,
    ).toBe(0);
    const m = manifest("a");
    expect(Object.getOwnPropertyNames(m).sort()).toEqual(["OTHER", "__proto__"]);
    expect(Object.getOwnPropertyDescriptor(m, "__proto__")?.value).toBe("p1");
    const before = readRecord(path.join(state, "cells", "a")).credentialsValueDigest;
    const plan = await run(["plan", "--detailed-exitcode", "--now", T(1)], {
      LAZARUS_SECRET_P: "p2",
      LAZARUS_SECRET_O: "o1",
    });
    expect(plan.exitCode, plan.stdout + plan.stderr).toBe(2); // the rotated value is a change
    expect(
      (await run(["apply", "--yes", "--now", T(1)], { LAZARUS_SECRET_P: "p2", LAZARUS_SECRET_O: "o1" })).exitCode,
    ).toBe(0);
    expect(Object.getOwnPropertyDescriptor(manifest("a"), "__proto__")?.value).toBe("p2");
    expect(readRecord(path.join(state, "cells", "a")).credentialsValueDigest).not.toBe(before);
  });

  it("holds a live cell whose declaration starts naming a host file: never closed, the file never copied in", async () => {
    const { secrets, config, run, manifest } = setup({ "cells.d/a.yaml": human("a", "    T: {file: token}") });
    writeFileSync(path.join(secrets, "token"), "operator-token\n");
    expect((await run(["apply", "--now", T(0)])).exitCode).toBe(0);
    writeFileSync(path.join(config, "cells.d", "a.yaml"), human("a", "    T: {file: /etc/hostname}"));
    const plan = await run(["plan", "--json", "--now", T(1)]);
    expect(plan.exitCode).toBe(1);
    expect(JSON.parse(plan.stdout)).toMatchObject({ actions: [], held: [{ cell: "a", file: "cells.d/a.yaml" }] });
    const r = await run(["apply", "--now", T(1)]);
    expect(r.exitCode).toBe(1);
    expect(manifest("a")).toEqual({ T: "operator-token" });
  });
});

describe("rotation", () => {
  it("reaches the cell on the next reconcile, shown as rotated, never with the value", async () => {
    const { state, secrets, run, manifest } = setup({
      "cells.d/a.yaml": human("a", "    T: {file: token}\n    E: {env: LAZARUS_SECRET_E}"),
    });
    writeFileSync(path.join(secrets, "token"), "value-one\n");
    expect((await run(["apply", "--now", T(0)], { LAZARUS_SECRET_E: "env-one" })).exitCode).toBe(0);
    expect(manifest("a")).toEqual({ T: "value-one", E: "env-one" });
    const digest = readRecord(path.join(state, "cells", "a")).credentialsValueDigest as string;
    expect(digest).toMatch(/^[0-9a-f]{32}$/);
    expect(
      createHash("sha256")
        .update(JSON.stringify({ E: "env-one", T: "value-one" }))
        .digest("hex"),
    ).not.toContain(digest); // keyed, not a bare hash
    expect(statSync(path.join(state, "credentials.key")).mode & 0o777).toBe(0o600);
    expect((await run(["plan", "--detailed-exitcode", "--now", T(1)], { LAZARUS_SECRET_E: "env-one" })).exitCode).toBe(
      0,
    );

    writeFileSync(path.join(secrets, "token"), "value-two\n");
    const plan = await run(["plan", "--now", T(2)], { LAZARUS_SECRET_E: "env-one" });
    expect(plan.stdout).toMatch(/update\s+a\s+credentials rotated/);
    expect(plan.stdout + plan.stderr).not.toMatch(/value-(one|two)/);
    const applied = await run(["apply", "--now", T(2)], { LAZARUS_SECRET_E: "env-one" });
    expect(applied.exitCode, applied.stderr).toBe(0);
    expect(manifest("a")).toEqual({ T: "value-two", E: "env-one" });
    expect(statSync(path.join(state, "cells", "a", ".lazarus", "secrets", "credentials.json")).mode & 0o777).toBe(
      0o600,
    );
    expect((await run(["plan", "--detailed-exitcode", "--now", T(3)], { LAZARUS_SECRET_E: "env-one" })).exitCode).toBe(
      0,
    );

    const env = await run(["apply", "--now", T(4)], { LAZARUS_SECRET_E: "env-two" });
    expect(env.stdout).toContain("credentials rotated");
    expect(manifest("a")).toEqual({ T: "value-two", E: "env-two" });
    const ledger = readFileSync(path.join(state, "ledger.jsonl"), "utf8");
    expect(ledger).toContain("credentials rotated");
    expect(ledger).not.toMatch(/value-(one|two)|env-(one|two)/);
  });
});
