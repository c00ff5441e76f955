// spec.progress as loaded: its defaults, and a bad value as an error at its line that says what to do.
import { describe, expect, it } from "vitest";
import { loadFileText } from "../../src/config/load.js";
import { formatDiagnostic } from "../../src/config/diagnostics.js";
import { AGENT, cellYaml } from "../helpers.js";
import { REGISTRY } from "../../src/backends/table.js";

const file = "cells.d/p.yaml";
const worker = { identity: "agent:worker", role: "executor", command: ["node", AGENT] };
const load = (progress: string, more = "", members = [worker]) =>
  loadFileText(file, cellYaml({ name: "p", members, extra: `  progress: ${progress}${more ? `\n${more}` : ""}` }));

describe("spec.progress", () => {
  it("defaults to a 10m slice and onStall notify; a cell without it is never judged", () => {
    expect(load("{}").cells[0]?.progress).toEqual({ sliceMs: 600_000, onStall: "notify" });
    expect(load("{slice: 90s, onStall: abort}").cells[0]?.progress).toEqual({ sliceMs: 90_000, onStall: "abort" });
    expect(loadFileText(file, cellYaml({ name: "p", members: [worker] })).cells[0]?.progress).toBeUndefined();
  });

  it("refuses a slice outside 1s–24h, an unknown onStall, and substitute without a substitute, at their lines", () => {
    const diags = (p: string) => load(p).diagnostics.map(formatDiagnostic).join("\n");
    expect(diags("{slice: 0s}")).toMatch(/p\.yaml:\d+:\d+: error: spec\.progress\.slice: .*1s/);
    expect(diags("{slice: 25h}")).toMatch(/spec\.progress\.slice: slice exceeds the 1d maximum/);
    expect(diags("{onStall: retry}")).toMatch(/spec\.progress\.onStall/);
    expect(diags("{onStall: substitute}")).toMatch(
      /error: spec\.progress\.onStall: onStall: substitute needs a member with role substitute .*\(declare a substitute/,
    );
    const ok = load("{onStall: substitute}", "  policy: {allowSubstitutes: true}", [
      worker,
      { identity: "agent:stand-in", role: "substitute", command: ["node", AGENT], replaces: "agent:worker" } as never,
    ]);
    expect(ok.diagnostics).toEqual([]);
  });
});

// What each backend needs declared besides spec.progress to load (its own required fields).
const BACKEND_FIELDS: Record<string, string> = {
  remote: "  remote: {host: box1.example, identityFile: /keys/id, knownHosts: /keys/known_hosts}",
  kubernetes: "  kubernetes: {namespace: agents, image: registry.example/agent:1}",
  container: "  container: {image: localhost/agent:1}",
};

describe("spec.progress and the backend", () => {
  const loadOn = (backend: string) => {
    const extra = [`  backend: ${backend}`, BACKEND_FIELDS[backend] ?? "", "  progress: {slice: 5m}"].filter(Boolean);
    const text = cellYaml({ name: "p", members: [worker], extra: extra.join("\n") });
    const line = text.split("\n").findIndex((l) => l.startsWith("  progress:")) + 1;
    return { line, diags: loadFileText(file, text).diagnostics };
  };

  it("is an error at its line on a backend that cannot show progress (remote, kubernetes), saying what to do", () => {
    const blind = REGISTRY.filter((b) => !b.capabilities.progress).map((b) => b.name);
    expect(blind.sort()).toEqual(["kubernetes", "remote"]);
    for (const backend of blind) {
      const { line, diags } = loadOn(backend);
      const found = diags.filter((d) => d.field === "spec.progress");
      expect(found, backend).toHaveLength(1);
      expect(formatDiagnostic(found[0]!)).toMatch(
        new RegExp(
          `^cells\\.d/p\\.yaml:${line}:\\d+: error: spec\\.progress: spec\\.progress needs backend .*process.*: backend ${backend} keeps .*stalled every slice \\(remove spec\\.progress, or use a backend`,
        ),
      );
      // the same cell without spec.progress loads without that error
      const text = cellYaml({
        name: "p",
        members: [worker],
        extra: [`  backend: ${backend}`, BACKEND_FIELDS[backend]].join("\n"),
      });
      expect(loadFileText(file, text).diagnostics.filter((d) => d.field === "spec.progress")).toEqual([]);
    }
  });

  it("loads on every backend that shows progress", () => {
    const seeing = REGISTRY.filter((b) => b.capabilities.progress).map((b) => b.name);
    expect(seeing).toEqual(expect.arrayContaining(["process", "sandbox", "container", "dry"]));
    for (const backend of seeing)
      expect(
        loadOn(backend).diags.filter((d) => d.field === "spec.progress"),
        backend,
      ).toEqual([]);
  });
});
