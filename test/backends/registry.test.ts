// The registry is the only list of backends: the schema's enum of spec.backend, its default and
// the check of LAZARUS_BACKENDS agree with it, and each row makes the backend it names.
import { describe, expect, it } from "vitest";
import { DEFAULT_BACKEND, REGISTRY, RETIRED, backendNames, backends } from "../../src/backends/registry.js";
import { loadSchema } from "../../src/config/schema.js";
import { hostSettings } from "../../src/host/settings.js";
import { settingProblems } from "../../src/host/table.js";
import { tempDir } from "../helpers.js";

const backendField = () =>
  (loadSchema("cell.schema.json").properties as any).spec.properties.backend as {
    enum: string[];
    default: string;
    description: string;
  };

describe("the backend registry", () => {
  it("and schemas/cell.schema.json name the same backends (the registry's rows, then the retired names)", () => {
    expect(backendField().enum).toEqual([...backendNames(), ...Object.keys(RETIRED)]);
    expect(backendField().default).toBe(DEFAULT_BACKEND);
    for (const name of backendNames())
      expect(backendField().description, `the schema's description says nothing of ${name}`).toContain(`${name} (`);
  });

  it("has one row per name, each making the backend it names", () => {
    expect(new Set(backendNames()).size).toBe(REGISTRY.length);
    const made = backends(tempDir("lazarus-state-"), process.env, hostSettings(process.env));
    for (const name of backendNames()) expect(made.get(name).name).toBe(name);
  });

  it("is what LAZARUS_BACKENDS is checked against", () => {
    expect(settingProblems({ LAZARUS_BACKENDS: backendNames().join(",") })).toEqual([]);
    expect(settingProblems({ LAZARUS_BACKENDS: "sandbox,proces" }).join("\n")).toContain(
      'names "proces", not a backend',
    );
  });
});
