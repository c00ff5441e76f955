// Bad files in cells.d/ through the real CLI and daemon: a clear diagnostic naming the file, never a
// hang or a stack trace, the file's cells held, every other file still reconciled.
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  openSync,
  closeSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import {
  CLI,
  cellYaml,
  cleanup,
  configDir,
  readRecord,
  startWatch,
  stopWatches,
  tempDir,
  waitFor,
} from "../helpers.js";

const dirs: string[] = [];
afterAll(async () => {
  await stopWatches();
  cleanup(...dirs);
});

const director = (name: string, ttl = "4h") =>
  cellYaml({ name, ttl, members: [{ identity: "human:h", role: "director" }] });

// The CLI with a deadline: a command that blocks fails the test instead of hanging it.
async function run(args: string[], opts: { uid?: number; env?: Record<string, string> } = {}) {
  const [cmd, argv] =
    opts.uid === undefined
      ? ["node", [CLI, ...args]]
      : ["setpriv", ["--reuid", String(opts.uid), "--regid", String(opts.uid), "--clear-groups", "node", CLI, ...args]];
  const r = await execa(cmd as string, argv as string[], {
    reject: false,
    timeout: 30_000,
    env: { NO_COLOR: "1", ...(opts.env ?? {}) },
  });
  return { timedOut: r.timedOut, exitCode: r.exitCode, stdout: String(r.stdout ?? ""), stderr: String(r.stderr ?? "") };
}

describe("validate and plan with unreadable files", () => {
  it("return at once with a FIFO in cells.d, naming it, and load every other file", async () => {
    const config = configDir({ "cells.d/good.yaml": director("good") });
    const state = tempDir("lazarus-state-");
    dirs.push(config, state);
    execFileSync("mkfifo", [path.join(config, "cells.d", "pipe.yaml")]);
    const v = await run(["validate", "--json", "--config", config]);
    expect(v.timedOut).toBe(false);
    expect(v.exitCode).toBe(1);
    const out = JSON.parse(v.stdout) as { cells: string[]; diagnostics: { file: string; message: string }[] };
    expect(out.cells).toEqual(["good"]);
    expect(out.diagnostics).toEqual([
      expect.objectContaining({
        file: "cells.d/pipe.yaml",
        message: "cannot read this file: it is a FIFO (named pipe)",
      }),
    ]);
    const p = await run(["plan", "--config", config, "--state-dir", state]);
    expect(p.timedOut).toBe(false);
    expect(p.stderr).toContain("cells.d/pipe.yaml: error: cannot read this file: it is a FIFO (named pipe)");
    expect(p.stdout).toContain("+ create        good");
  });

  it("hold a file whose cell asks for more memory than the host allows (LAZARUS_MAX_MEMORY), and load every other file", async () => {
    const greedy = cellYaml({
      name: "greedy",
      extra: "  resources: {memory: 1Ti}",
      members: [{ identity: "human:h", role: "director" }],
    });
    const config = configDir({ "cells.d/good.yaml": director("good"), "cells.d/greedy.yaml": greedy });
    const state = tempDir("lazarus-state-");
    dirs.push(config, state);
    const v = await run(["validate", "--json", "--config", config], { env: { LAZARUS_MAX_MEMORY: "4Gi" } });
    expect(v.exitCode).toBe(1);
    const out = JSON.parse(v.stdout) as {
      cells: string[];
      diagnostics: { severity: string; file: string; line: number; message: string; hint: string }[];
    };
    expect(out.cells).toEqual(["good"]);
    expect(out.diagnostics.filter((d) => d.severity === "error")).toEqual([
      expect.objectContaining({
        file: "cells.d/greedy.yaml",
        line: 8,
        message: "memory 1Ti is above this host's ceiling of 4Gi (LAZARUS_MAX_MEMORY)",
        hint: "ask for at most 4Gi, or the operator raises LAZARUS_MAX_MEMORY where Lazarus runs",
      }),
    ]);
    const p = await run(["plan", "--config", config, "--state-dir", state], { env: { LAZARUS_MAX_MEMORY: "4Gi" } });
    expect(p.stdout).toContain("+ create        good");
    expect(p.stdout).toMatch(
      /! held\s+greedy\s+cells\.d\/greedy\.yaml is quarantined; the new cell is not created until it loads/,
    );
    expect(p.stdout).not.toMatch(/create\s+greedy/);
  });

  it("refuse a 50 MB file without reading it, and load every other file", async () => {
    const config = configDir({ "cells.d/good.yaml": director("good") });
    dirs.push(config);
    const fd = openSync(path.join(config, "cells.d", "huge.yaml"), "w");
    const block = Buffer.from(
      `${Array.from({ length: 1000 }, (_, i) => `- {name: item-${i}, value: [a, b, c]}`).join("\n")}\n`,
    );
    for (let written = 0; written < 50 * 1024 * 1024; written += block.length) writeSync(fd, block);
    closeSync(fd);
    const v = await run(["validate", "--json", "--config", config]);
    expect(v.timedOut).toBe(false);
    const out = JSON.parse(v.stdout) as {
      cells: string[];
      diagnostics: { file: string; message: string; hint: string }[];
    };
    expect(out.cells).toEqual(["good"]);
    expect(out.diagnostics).toHaveLength(1);
    expect(out.diagnostics[0]).toMatchObject({
      file: "cells.d/huge.yaml",
      message: expect.stringMatching(/^cannot read this file: it is \d+ bytes, over the 1048576-byte limit$/),
    });
    expect(out.diagnostics[0]!.hint).toContain("--max-file-size");
  });

  it("as a user who cannot read a file or a directory: that file or portfolios/ is held, the rest loads", async () => {
    const config = configDir({
      "cells.d/good.yaml": director("good"),
      "cells.d/secret.yaml": director("secret"),
      "portfolios/p.yaml":
        "apiVersion: lazarus/v1\nkind: Portfolio\nmetadata: {name: default}\nspec: {models: [{model: m, provider: p}]}\n",
    });
    dirs.push(config);
    chmodSync(config, 0o755);
    chmodSync(path.join(config, "cells.d", "secret.yaml"), 0o600);
    chmodSync(path.join(config, "portfolios"), 0o700);
    const v = await run(["validate", "--json", "--config", config], { uid: 65534 });
    expect(v.timedOut).toBe(false);
    expect(v.exitCode, v.stderr).toBe(1);
    const out = JSON.parse(v.stdout) as {
      cells: string[];
      diagnostics: { file: string; message: string; hint: string }[];
    };
    expect(out.cells).toEqual(["good"]);
    expect(out.diagnostics.map((d) => [d.file, d.message])).toEqual([
      ["cells.d/secret.yaml", "cannot read this file: permission denied"],
      ["portfolios", "portfolios/ cannot be listed: permission denied; the portfolios are held as they are"],
    ]);
    expect(out.diagnostics[0]!.hint).toContain("uid 65534");
    chmodSync(path.join(config, "cells.d"), 0o700);
    const d = await run(["validate", "--config", config], { uid: 65534 });
    expect(d.exitCode).toBe(1);
    expect(d.stderr.trim().split("\n")).toEqual([
      expect.stringMatching(
        /^error: cells\.d\/ cannot be listed: permission denied \(in .*\); make it readable and searchable by the user Lazarus runs as \(uid 65534\); nothing was changed$/,
      ),
    ]);
  });
});

describe("a bad file holds its cells through apply, and the others still reconcile", () => {
  const config = configDir({ "cells.d/a.yaml": director("alpha"), "cells.d/b.yaml": director("beta") });
  const state = tempDir("lazarus-state-");
  dirs.push(config, state);
  const a = path.join(config, "cells.d", "a.yaml");
  const common = ["--config", config, "--state-dir", state];
  let betaTtl = 4;

  const replaceA = (make: () => void) => {
    rmSync(a, { recursive: true, force: true });
    make();
  };

  it("creates both cells", async () => {
    const r = await run(["apply", ...common]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readRecord(path.join(state, "cells", "alpha")).state).toBe("active");
  });

  it.each([
    ["a FIFO", () => execFileSync("mkfifo", [a]), "it is a FIFO"],
    ["a directory", () => mkdirSync(a), "it is a directory"],
    ["a dangling symlink", () => symlinkSync("gone.yaml", a), "dangling symbolic link"],
    ["a symlink loop", () => symlinkSync("a.yaml", a), "symbolic link loop"],
    ["a symlink to /dev/zero", () => symlinkSync("/dev/zero", a), "symbolic link to /dev/zero"],
    [
      "over the size cap",
      () => writeFileSync(a, `${director("alpha")}#${"x".repeat(1024 * 1024)}\n`),
      "over the 1048576-byte limit",
    ],
    [
      "invalid UTF-8",
      () => writeFileSync(a, Buffer.concat([Buffer.from(director("alpha")), Buffer.from([0xfe, 0x0a])])),
      "invalid UTF-8",
    ],
    [
      "UTF-16",
      () => writeFileSync(a, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(director("alpha"), "utf16le")])),
      "UTF-16",
    ],
    ["emptied", () => writeFileSync(a, ""), "declares no cells"],
    ["comments only", () => writeFileSync(a, "# moved\n"), "declares no cells"],
  ])("%s: alpha is held, beta renews", async (_what, make, message) => {
    replaceA(make);
    betaTtl++;
    writeFileSync(path.join(config, "cells.d", "b.yaml"), director("beta", `${betaTtl}h`));
    const plan = await run(["plan", "--json", ...common]);
    expect(plan.timedOut).toBe(false);
    const p = JSON.parse(plan.stdout) as {
      actions: { cell: string; action: string }[];
      held: { cell: string; file: string }[];
      diagnostics: { file: string; message: string }[];
    };
    expect(p.held).toEqual([{ cell: "alpha", file: "cells.d/a.yaml" }]);
    expect(p.actions.map((x) => `${x.action} ${x.cell}`)).toEqual(["renew beta"]);
    expect(p.diagnostics.find((d) => d.file === "cells.d/a.yaml")?.message).toContain(message);
    const r = await run(["apply", ...common]);
    expect(r.timedOut).toBe(false);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(readRecord(path.join(state, "cells", "alpha")).state).toBe("active");
    expect(readRecord(path.join(state, "cells", "beta")).ttlMs).toBe(betaTtl * 3_600_000);
  });

  it("reconciles alpha again once its file is fixed, and closes it once the file is deleted", async () => {
    replaceA(() => writeFileSync(a, director("alpha")));
    const plan = JSON.parse((await run(["plan", "--json", ...common])).stdout) as {
      actions: unknown[];
      held: unknown[];
    };
    expect(plan).toMatchObject({ actions: [], held: [] });
    unlinkSync(a);
    const r = await run(["apply", ...common]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/close\s+alpha/);
    expect(existsSync(path.join(state, "cells", "alpha"))).toBe(false);
  });
});

describe("apply with a saved plan that is not a plan file", () => {
  it("returns at once for a FIFO, a directory or garbage, naming the file, and touches nothing", async () => {
    const dir = tempDir("lazarus-saved-");
    dirs.push(dir);
    const state = path.join(dir, "state");
    const fifo = path.join(dir, "plan.json");
    execFileSync("mkfifo", [fifo]);
    for (const [file, message] of [
      [fifo, "it is a FIFO"],
      [dir, "it is a directory"],
      [path.join(dir, "nope.json"), "no such file"],
    ] as const) {
      const r = await run(["apply", file, "--state-dir", state]);
      expect(r.timedOut).toBe(false);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toContain(file);
      expect(r.stderr).toContain(message);
      expect(r.stderr).not.toMatch(/^\s+at /m);
    }
    writeFileSync(path.join(dir, "junk.json"), "{not json");
    const junk = await run(["apply", path.join(dir, "junk.json"), "--state-dir", state]);
    expect(junk.stderr).toContain("is not valid JSON");
    writeFileSync(path.join(dir, "null.json"), "null");
    expect((await run(["apply", path.join(dir, "null.json"), "--state-dir", state])).stderr).toContain(
      "is not a plan saved by lazarus plan --out",
    );
    expect(existsSync(state)).toBe(false);
  });
});

describe("lazarus watch with a FIFO in cells.d", () => {
  it("starts, reconciles the other files, reports the FIFO, and stops on SIGTERM", async () => {
    const config = configDir({ "cells.d/good.yaml": director("good") });
    const state = tempDir("lazarus-state-");
    dirs.push(config, state);
    execFileSync("mkfifo", [path.join(config, "cells.d", "pipe.yaml")]);
    const w = startWatch(["--config", config, "--state-dir", state, "--tick", "* * * * * *", "--debounce", "50ms"]);
    const daemon = w.child;
    await waitFor(() => w.logs.includes('"msg":"watching"'), 20_000);
    expect(w.logs).toContain("cells.d/pipe.yaml: error: cannot read this file: it is a FIFO (named pipe)");
    expect(readRecord(path.join(state, "cells", "good")).state).toBe("active");
    // A FIFO that appears while it runs is reported too, and never blocks the daemon.
    execFileSync("mkfifo", [path.join(config, "cells.d", "late.yaml")]);
    await waitFor(() => w.logs.includes("cells.d/late.yaml: error: cannot read this file: it is a FIFO"), 10_000);
    // An emptied file holds its cell: the daemon never closes what a truncated file declared.
    writeFileSync(path.join(config, "cells.d", "good.yaml"), "");
    await waitFor(() => w.logs.includes("cells.d/good.yaml:1:1: warning: this file declares no cells"), 10_000);
    await new Promise((r) => setTimeout(r, 1500)); // a tick or two
    expect(readRecord(path.join(state, "cells", "good")).state).toBe("active");
    expect(w.logs).not.toMatch(/"action":"close"/);
    daemon.kill("SIGTERM");
    const r = await Promise.race([daemon, new Promise<"hung">((resolve) => setTimeout(() => resolve("hung"), 15_000))]);
    expect(r).not.toBe("hung");
    expect((r as { exitCode?: number }).exitCode).toBe(0);
  });
});
