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
    const config = configDir({
      "cells.d/a.yaml": cellYaml({ name: "a", extra: "  credentials:\n    T: {file: token}" }),
      "cells.d/b.yaml": cellYaml({ name: "b" }),
    });
    dirs.push(secrets, config);
    writeFileSync(path.join(secrets, "token"), "one");
    const key = randomBytes(32);
    const cache = new ConfigCache(config, async () => ({
      host: hostSettings({ LAZARUS_SECRETS_DIR: secrets }),
      hostEnv: {},
      digestKey: key,
    }));
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

// The daemon combines incrementally (src/config/load.ts Combiner): what an unchanged file
// contributes is remembered. After every edit its view must equal a fresh load of the same files.
describe("ConfigCache after edits", () => {
  const cell = (name: string, agent: string, portfolio?: string): string =>
    [
      "apiVersion: lazarus/v1",
      "kind: Cell",
      "metadata:",
      `  name: ${name}`,
      "spec:",
      "  project: Org/repo#1",
      "  owner: human:alexander",
      "  members:",
      `    - identity: agent:${agent}`,
      "      role: observer",
      ...(portfolio ? [`      portfolio: ${portfolio}`] : []),
      "",
    ].join("\n");
  const portfolio = (name: string, model: string, agents: string[] = []): string =>
    [
      "apiVersion: lazarus/v1",
      "kind: Portfolio",
      "metadata:",
      `  name: ${name}`,
      "spec:",
      ...(agents.length ? [`  appliesTo: {agents: [${agents.join(", ")}]}`] : []),
      "  models:",
      `    - {model: ${model}, provider: anthropic}`,
      "",
    ].join("\n");
  const view = (c: {
    desired: import("../../src/config/types.js").Desired;
    diagnostics: import("../../src/config/diagnostics.js").Diagnostic[];
  }): unknown => ({
    cells: [...c.desired.cells.values()]
      .map((x) => [x.name, x.members.map((m) => m.resolvedPortfolio?.digest ?? null)])
      .sort(),
    held: c.desired.portfoliosHeld,
    quarantined: c.desired.quarantined,
    diagnostics: c.diagnostics.map((d) => `${d.file}:${d.line} ${d.message}`).sort(),
  });

  it("equals a fresh load after each edit to cells and portfolios", async () => {
    const config = configDir({
      "cells.d/a.yaml": cell("a", "ezra"),
      "cells.d/b.yaml": cell("b", "allegro", "special"),
      "cells.d/c.yaml": cell("c", "timmy"),
      "portfolios/default.yaml": portfolio("default", "claude-sonnet-4"),
    });
    dirs.push(config);
    const { loadConfig } = await import("../../src/config/load.js");
    const cache = new ConfigCache(config);
    await cache.refresh();
    const edits: [string, string | undefined][] = [
      ["portfolios/special.yaml", portfolio("special", "gpt-4.1")], // b's portfolio now exists
      ["cells.d/c.yaml", cell("c", "timmy", "special")],
      ["portfolios/default.yaml", portfolio("default", "gemini-2.5-pro")], // a's resolution changes
      ["cells.d/d.yaml", cell("a", "ezra")], // a declared twice: both files quarantined
      ["cells.d/d.yaml", undefined], // and back
      ["portfolios/special.yaml", portfolio("special", "gpt-4.1", ["ezra"])],
      ["portfolios/other.yaml", portfolio("other", "gpt-4.1", ["ezra"])], // a clash: portfolios held
      ["portfolios/other.yaml", undefined],
      ["portfolios/special.yaml", undefined], // b and c name a portfolio that is gone
    ];
    const seen = new Set<string>();
    for (const [file, text] of edits) {
      if (text === undefined) rmSync(path.join(config, file));
      else writeFileSync(path.join(config, file), text);
      await cache.refresh([file]);
      const fresh = view(await loadConfig(config));
      expect(view(cache.current()), `after writing ${file}`).toEqual(fresh);
      seen.add(JSON.stringify(fresh));
    }
    expect(seen.size).toBeGreaterThan(5); // the edits did change the view
  });
});
