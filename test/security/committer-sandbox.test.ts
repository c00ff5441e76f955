// A committer (who writes cells.d/ and the files beside it, and is not trusted) against the
// sandbox backend: what a cell file and the config repo's own files can make a sandboxed member
// see. Real bubblewrap, real uids (from this file's own range), real cgroups.
import { chmodSync, existsSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { cellYaml, configDir, lazarus, tempDir, waitFor } from "../helpers.js";
import { which } from "../../src/util/which.js";
import { cleanupCgroups, sandboxEnv, sandboxStateDir, skipReason } from "../sandbox/helpers.js";

describe.skipIf(skipReason)("a committer against the sandbox backend", () => {
  const env = sandboxEnv("security/committer-sandbox");
  const state = sandboxStateDir();
  const outside = tempDir("lazarus-host-");
  const cfg = configDir({});
  const run = (...args: string[]) => lazarus([...args, "-c", cfg, "-s", state], { env });
  const log = (cell: string, home: string): string => {
    const f = path.join(state, "cells", cell, ".lazarus", "logs", `${home}.log`);
    return existsSync(f) ? readFileSync(f, "utf8") : "";
  };

  afterAll(async () => {
    await cleanupCgroups(env.LAZARUS_CGROUP_ROOT as string);
    for (const d of [state, outside, cfg]) rmSync(d, { recursive: true, force: true });
  });

  it("a symbolic link of the config repo named in a command shows nothing of the host in the sandbox", async () => {
    chmodSync(cfg, 0o755); // a config dir others may traverse (bwrap then reads the paths itself)
    // A host file any uid may read, and one of the repo's own files: only the latter is the cell's.
    const hostFile = path.join(outside, "host-secret.txt");
    writeFileSync(hostFile, "HOST-SECRET\n", { mode: 0o644 });
    writeFileSync(path.join(cfg, "own.txt"), "OWN-FILE\n", { mode: 0o644 });
    symlinkSync(hostFile, path.join(cfg, "leak")); // a link to a host file
    symlinkSync("/proc/self/root", path.join(cfg, "root")); // a link to the whole host tree
    symlinkSync("own.txt", path.join(cfg, "alias")); // a link inside the repo still works
    const script = 'for f in "$@"; do cat "$f" 2>&1; done; ls "$2/" 2>&1 | head -3; echo END';
    // Links out of the repo are refused at their line: nothing of the cell is created.
    const links = path.join(cfg, "cells.d", "links.yaml");
    writeFileSync(
      links,
      cellYaml({
        name: "links",
        extra: "  backend: sandbox",
        members: [
          {
            identity: "agent:m",
            restart: "never",
            command: ["sh", "-c", script, "sh", "./leak", "./root", "./own.txt", "./alias"],
          },
        ],
      }),
    );
    const refused = await run("validate");
    expect(refused.exitCode).toBe(1);
    expect(refused.stdout + refused.stderr).toMatch(/links\.yaml:\d+:\d+: error: .*leak/);
    expect(existsSync(path.join(state, "cells", "links"))).toBe(false);
    // The repo's own files (and a link inside it) are bound in; $2 is a dir that does not exist there.
    writeFileSync(
      links,
      cellYaml({
        name: "links",
        extra: "  backend: sandbox",
        members: [
          {
            identity: "agent:m",
            restart: "never",
            command: ["sh", "-c", script, "sh", "./own.txt", "/nonexistent", "./alias"],
          },
        ],
      }),
    );
    expect((await run("apply", "--yes")).exitCode).toBe(0);
    await waitFor(() => log("links", "m").includes("END"), 20_000);
    const out = log("links", "m");
    expect(out).toContain("OWN-FILE"); // the member ran and reads the repo's own files
    expect(out.match(/OWN-FILE/g)?.length).toBe(2); // through the link inside the repo too
    expect(out).not.toContain("HOST-SECRET");
    expect(out).not.toMatch(/\b(bin|boot|usr)\b\n/); // no listing of the host's root
  });

  // A preload library that answers every probe line with "ok" and ends the probe's shell: what a
  // member can write in its home, and a committer can name in the member's env.
  const cc = which("cc", process.env.PATH);
  it.skipIf(!cc)(
    "lazarus verify runs its probe without the member's declared environment (LD_PRELOAD cannot forge it)",
    async () => {
      const src = path.join(outside, "forge.c");
      const lib = path.join(outside, "forge.so");
      writeFileSync(
        src,
        '#include <stdio.h>\n#include <unistd.h>\n__attribute__((constructor)) static void f(void) { printf("write outside the cell\\tok\\tforged\\n"); fflush(stdout); _exit(0); }\n',
      );
      execFileSync(cc as string, ["-shared", "-fPIC", "-o", lib, src]);
      // The member copies the library into its home; its declared env preloads it.
      writeFileSync(
        path.join(cfg, "cells.d", "forge.yaml"),
        cellYaml({
          name: "forge",
          extra: "  backend: sandbox",
          members: [
            {
              identity: "agent:f",
              command: [
                "sh",
                "-c",
                'cat "$0" > "$HOME/forge.so.tmp" && mv "$HOME/forge.so.tmp" "$HOME/forge.so"; exec sleep 1000',
                "./forge.so",
              ],
              env: { LD_PRELOAD: "/cell/home/f/forge.so" },
            },
          ],
        }),
      );
      writeFileSync(path.join(cfg, "forge.so"), readFileSync(lib));
      expect((await run("apply", "--yes")).exitCode).toBe(0);
      await waitFor(() => existsSync(path.join(state, "cells", "forge", "home", "f", "forge.so")), 20_000);
      const r = await lazarus(["verify", "forge", "--json", "-s", state], { env });
      const report = JSON.parse(r.stdout) as {
        cells: { checks: { check: string; member?: string; detail: string }[] }[];
      };
      const mine = report.cells[0]?.checks.filter((c) => c.member === "agent:f") ?? [];
      expect(mine.map((c) => c.detail)).not.toContain("forged");
      expect(mine.map((c) => c.check)).toEqual(
        expect.arrayContaining(["read a sibling cell", "see a host or sibling process", "host environment"]),
      );
    },
    240_000,
  ); // a verify run: minutes on a loaded 2-core host
});
