// The daemon watches cells.d/ before its first read: an edit made while it reads and reconciles
// at start is applied in seconds, not at the next resync (here 10 minutes). The first pass is
// held open by a pausepoint (src/util/failpoint.ts) right after it read the files, before it
// reconciles the cells (with many cells, the long part).
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  AGENT,
  cellYaml,
  cleanup,
  configDir,
  isAlive,
  readRecord,
  startWatch,
  stopWatches,
  tempDir,
  waitFor,
} from "../helpers.js";

const made: string[] = [];
afterEach(async () => {
  await stopWatches();
  cleanup(...made.splice(0));
});

const agentCell = (name: string, env: Record<string, string> = {}) =>
  cellYaml({ name, members: [{ identity: "agent:allegro", command: ["node", AGENT], env }] });

describe("lazarus watch at start", () => {
  it("applies an edit made during its first pass without waiting for the resync", async () => {
    const state = tempDir("lazarus-state-");
    const config = configDir({ "cells.d/a.yaml": agentCell("a") });
    made.push(state, config);
    const w = startWatch(
      ["--config", config, "--state-dir", state, "--resync", "10m", "--debounce", "50", "--tick", "* * * * * *"],
      { LAZARUS_PAUSEPOINT: "daemon:full-pass:3000" },
    );

    // The files are read; the first pass waits before reconciling them. Now the operator edits one and adds one.
    await waitFor(() => w.logs.includes("pausepoint daemon:full-pass"), 20_000);
    writeFileSync(path.join(config, "cells.d", "a.yaml"), agentCell("a", { EDITED: "1" }));
    writeFileSync(path.join(config, "cells.d", "b.yaml"), agentCell("b"));

    const member = (name: string) => {
      try {
        const m = readRecord(path.join(state, "cells", name)).members[0];
        return m?.status === "running" && isAlive(m.pid, m.startTime) ? m : undefined;
      } catch {
        return undefined;
      }
    };
    await waitFor(() => member("b") !== undefined && member("a")?.env?.EDITED === "1", 20_000).catch(() => undefined);
    expect(member("b"), `the added cell runs\n${w.logs}`).toBeDefined();
    expect(member("a")?.env, "the edited cell was restarted with its new env").toEqual({ EDITED: "1" });
  });
});
