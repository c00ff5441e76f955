// The daemon's config cache checks credentials again on every full refresh, so a rotated secret
// (or one replaced by a link out of the secrets root) is seen although no file in cells.d/ changed.
import { randomBytes } from "node:crypto";
import { rmSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigCache } from "../../src/daemon/config-cache.js";
import { hostSettings } from "../../src/host/settings.js";
import { cellYaml, configDir, tempDir } from "../helpers.js";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe("ConfigCache and credentials", () => {
  it("sees a rotated secret, and a secret turned into a link out of the root, on a full refresh only", async () => {
    const secrets = tempDir("lazarus-secrets-");
    const config = configDir({ "cells.d/a.yaml": cellYaml({ name: "a", extra: "  credentials:\n    T: {file: token}" }), "cells.d/b.yaml": cellYaml({ name: "b" }) });
    dirs.push(secrets, config);
    writeFileSync(path.join(secrets, "token"), "one");
    const key = randomBytes(32);
    const cache = new ConfigCache(config, async () => ({ host: hostSettings({ LAZARUS_SECRETS_DIR: secrets }), hostEnv: {}, digestKey: key }));
    await cache.refresh();
    const first = cache.current().desired.cells.get("a")?.credentialsValueDigest;
    expect(first).toMatch(/^[0-9a-f]{32}$/);

    writeFileSync(path.join(secrets, "token"), "two");
    expect((await cache.refresh(["cells.d/b.yaml"])).affected.size).toBe(0);
    const full = await cache.refresh();
    expect([...full.affected]).toEqual(["a"]);
    const second = cache.current().desired.cells.get("a")?.credentialsValueDigest;
    expect(second).toMatch(/^[0-9a-f]{32}$/);
    expect(second).not.toBe(first);
    expect((await cache.refresh()).affected.size).toBe(0);

    rmSync(path.join(secrets, "token"));
    symlinkSync("/etc/hostname", path.join(secrets, "token"));
    await cache.refresh();
    const { desired, diagnostics } = cache.current();
    expect(desired.cells.has("a")).toBe(false);
    expect(desired.quarantined).toEqual([{ file: "cells.d/a.yaml", names: ["a"] }]);
    expect(diagnostics.map((d) => d.message).join()).toContain("leads outside the secrets root");
  });
});
